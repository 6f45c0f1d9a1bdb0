//! Configuration errors and warnings in the user's words: the environment
//! variable or the file and key as written, said once.

use figment::Source;
use figment::error::Kind;

/// Non-setting `KILN_` variables kiln (or its tests and benches) reads on purpose.
const OWN_VARIABLES: &[&str] = &["KILN_CONFIG", "KILN_BLESS"];
const OWN_PREFIXES: &[&str] = &["KILN_BENCH_", "KILN_REQUIRE_"];

/// Every error of a failed load, one line each.
pub fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            // The profile name figment puts first is not part of any key.
            let mut path = e.path.clone();
            if path.first().is_some_and(|p| p == "default") {
                path.remove(0);
            }
            let what = kind(&e.kind);
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.contains("environment"));
            match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                _ if from_env => {
                    let var = format!("KILN_{}", path.join("__")).to_uppercase();
                    format!("environment variable {var}: {what}")
                }
                Some(Source::File(file)) if path.is_empty() => {
                    format!("{}: {what}", file.display())
                }
                Some(Source::File(file)) => {
                    format!("{}: key {}: {what}", file.display(), path.join("."))
                }
                _ if path.is_empty() => what,
                _ => format!("{}: {what}", path.join(".")),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error itself, without figment's location suffix.
fn kind(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.clone(),
        Kind::UnknownField(field, expected) => {
            format!("unknown key {field:?}; known keys: {}", expected.join(", "))
        }
        other => other.to_string(),
    }
}

/// Warns (on stderr: logging is not set up yet) about `KILN_` variables that
/// name no setting: settings are `KILN_SECTION__KEY`, with two underscores.
pub fn warn_unknown_variables(names: impl Iterator<Item = String>) {
    for name in names {
        if let Some(hint) = unknown(&name) {
            eprintln!("kiln: warning: {hint}");
        }
    }
}

/// Why `name` is ignored, if it is a `KILN_` variable kiln does not read.
fn unknown(name: &str) -> Option<String> {
    let rest = name.strip_prefix("KILN_")?;
    if name.contains("__")
        || OWN_VARIABLES.contains(&name)
        || OWN_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return None;
    }
    // KILN_BATCHING_MAX_BATCH_SIZE: the first `_` was meant as `__`.
    let guess = rest
        .split_once('_')
        .map(|(section, key)| format!("; did you mean KILN_{section}__{key}?"))
        .unwrap_or_default();
    Some(format!(
        "{name} is ignored: settings are KILN_SECTION__KEY, with two underscores{guess}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_underscore_is_pointed_out_and_own_variables_are_not() {
        let hint = unknown("KILN_BATCHING_MAX_BATCH_SIZE").unwrap();
        assert!(
            hint.contains("did you mean KILN_BATCHING__MAX_BATCH_SIZE?"),
            "{hint}"
        );
        for quiet in [
            "KILN_CONFIG",
            "KILN_BATCHING__MAX_BATCH_SIZE",
            "KILN_BENCH_ONLY",
            "KILN_REQUIRE_PROMTOOL",
            "KILN_BLESS",
            "PATH",
        ] {
            assert_eq!(unknown(quiet), None, "{quiet}");
        }
    }
}
