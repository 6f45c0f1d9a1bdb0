//! The README's configuration table and `config/default.toml` name the same keys:
//! every key the file sets or shows commented out has a row, and every row is a
//! key of the file, so the reference cannot drift from the configuration.

use std::collections::BTreeSet;

/// `section.key` for every key in `default.toml`, set or commented out
/// (`# key = ...` under a section); a `[a.b]` table counts as the key `a.b`.
fn file_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            if section.contains('.') {
                keys.insert(section.clone());
            }
            continue;
        }
        let body = line.strip_prefix('#').map_or(line, str::trim_start);
        let Some((key, _)) = body.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if plain && !section.is_empty() && !section.contains('.') {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

/// The keys of the README's table under `## Configuration`.
fn readme_keys(readme: &str) -> BTreeSet<String> {
    let start = readme
        .find("\n## Configuration")
        .expect("a Configuration section");
    let end = readme[start + 1..]
        .find("\n## ")
        .map_or(readme.len(), |e| start + 1 + e);
    readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|k| k.contains('.'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_configuration_table_lists_every_key_of_default_toml() {
    let file = file_keys(&super::read("config/default.toml"));
    let table = readme_keys(&super::read("README.md"));
    assert!(file.len() > 60, "{file:?}");
    let missing: Vec<_> = file.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&file).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "keys without a README row: {missing:?}; README rows that are no key: {unknown:?}"
    );
}
