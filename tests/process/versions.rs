//! `kiln promote`, `kiln rollback` and `kiln train --promote`: the README's offline
//! block, where a second model with other inputs is not comparable with the first.

use super::run;

#[test]
fn the_command_line_promotes_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let iris = super::common::data("iris.csv");
    let digits = super::common::data("digits.csv");
    let (iris, digits) = (iris.to_str().unwrap(), digits.to_str().unwrap());
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/config/digits-cnn-train.toml");
    let train = |data: &str, extra: &[&str]| {
        let mut args = vec!["train", "--quiet", "--store", store, "--data", data];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (ok, out, err) = train(iris, &["--epochs", "5"]);
    assert!(
        ok && out.contains("version v1") && out.contains("now active"),
        "{out}{err}"
    );
    // Other inputs: not comparable, not promoted, and the hint is a command.
    let (ok, out, err) = train(digits, &["--recipe", recipe, "--epochs", "1"]);
    assert!(ok && out.contains("not promoted"), "{out}{err}");
    assert!(out.contains("kiln promote v2"), "{out}");
    let predict = || run(&["predict", "--store", store, "--data", digits]);
    let (ok, _, err) = predict();
    assert!(!ok && err.contains("v1"), "{err}");
    let (ok, out, err) = run(&["promote", "v2", "--store", store]);
    assert!(
        ok && out.contains("v2 is now the active version (was v1"),
        "{out}{err}"
    );
    let (ok, out, err) = predict();
    assert!(ok && out.lines().count() > 1000, "{err}");
    let (ok, out, err) = run(&["rollback", "--store", store]);
    assert!(
        ok && out.contains("v1 is now the active version (was v2)"),
        "{out}{err}"
    );
    // A version that is not there is refused and nothing changes.
    let (ok, _, err) = run(&["promote", "v9", "--store", store]);
    assert!(!ok && err.contains("v9"), "{err}");
    // --promote always makes the CNN active at once.
    let (ok, out, err) = train(
        digits,
        &["--recipe", recipe, "--epochs", "1", "--promote", "always"],
    );
    assert!(
        ok && out.contains("version v3") && out.contains("now active"),
        "{out}{err}"
    );
    let (ok, _, err) = train(iris, &["--promote", "sometimes"]);
    assert!(!ok && err.contains("always, if_better or never"), "{err}");
}
