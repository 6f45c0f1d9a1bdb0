//! `;` and tab files, as spreadsheets in many locales save them: sniffed by
//! `kiln train` and `kiln predict`, decimal commas read, `--delimiter` to force one,
//! and the same hint from both when the delimiter is wrong.

use super::run;

#[test]
fn semicolon_and_tab_files_train_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let iris = std::fs::read_to_string(super::common::data("iris.csv")).unwrap();
    // Semicolons with decimal commas, and tabs with decimal points.
    let semicolon = iris.replace(',', ";").replace('.', ",");
    let tab = iris.replace(',', "\t");
    for (name, text, flag) in [("semi.csv", semicolon, ";"), ("tab.tsv", tab, "tab")] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let data = path.to_str().unwrap();
        let store = dir.path().join(format!("store-{name}"));
        let store = store.to_str().unwrap();
        let (ok, out, err) = run(&[
            "train", "--quiet", "--store", store, "--data", data, "--epochs", "30",
        ]);
        assert!(ok && out.contains("now active"), "{name}: {out}{err}");
        let (ok, out, err) = run(&["predict", "--store", store, "--data", data]);
        assert!(ok, "{name}: {err}");
        let correct = out
            .lines()
            .zip(iris.lines().skip(1))
            .filter(|(p, row)| p.contains(&format!("\"{}\"", row.rsplit(',').next().unwrap())))
            .count();
        assert!(correct >= 120, "{name}: {correct}/150 right");
        // Forced to the comma, both commands say which flag reads the file.
        let hint = format!(
            "pass --delimiter {}",
            if flag == ";" { "';'" } else { "tab" }
        );
        let (ok, _, err) = run(&[
            "train",
            "--quiet",
            "--store",
            store,
            "--data",
            data,
            "--delimiter",
            ",",
        ]);
        assert!(!ok && err.contains(&hint), "{name}: {err}");
        let (ok, _, err) = run(&[
            "predict",
            "--store",
            store,
            "--data",
            data,
            "--delimiter",
            ",",
        ]);
        assert!(!ok && err.contains(&hint), "{name}: {err}");
        let (ok, _, err) = run(&[
            "train",
            "--quiet",
            "--store",
            store,
            "--data",
            data,
            "--delimiter",
            flag,
        ]);
        assert!(ok, "{name} with --delimiter {flag}: {err}");
    }
}
