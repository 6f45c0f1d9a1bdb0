//! The layering `lib.rs` writes down holds: every `crate::<module>` path in a
//! module's sources names a module of an earlier layer. A static check of the
//! sources, so an arrow running back up fails the suite, not a review.

use std::collections::HashMap;
use std::path::Path;

/// `lib.rs`'s top-level modules and the layer (group) each is declared in.
fn layers(lib: &str) -> HashMap<String, usize> {
    let mut layer = 0;
    let mut seen_in_layer = false;
    let mut out = HashMap::new();
    for line in lib.lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|r| r.strip_suffix(';'))
        {
            out.insert(name.to_string(), layer);
            seen_in_layer = true;
        } else if line.is_empty() && seen_in_layer {
            layer += 1;
            seen_in_layer = false;
        }
    }
    out
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source names through `crate::` (comment lines
/// skipped), with the line of each use; `use crate::{a, b::{c, d}}` names `a`
/// and `b`, across lines too.
fn uses(text: &str, modules: &HashMap<String, usize>) -> Vec<(String, usize)> {
    let code: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut push = |name: String, at: usize| {
        if modules.contains_key(&name) {
            out.push((name, line_of(at)));
        }
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            push(ident(rest), at);
            continue;
        };
        // Each item's first segment, at the group's own depth.
        let mut depth = 0;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    item_start = false;
                    push(ident(&group[i..]), at);
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_earlier_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(modules.len() >= 15, "lib.rs declares {modules:?}");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let Some(&own) = modules.get(top) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (used, line) in uses(&text, &modules) {
            if used != top && modules[&used] >= own {
                wrong.push(format!("{}:{line}: {top} uses {used}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that run up or across lib.rs's layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_a_back_arrow() {
    let modules = layers("pub mod model;\n\npub mod serving;\n");
    assert_eq!(modules["model"], 0);
    assert_eq!(modules["serving"], 1);
    let found = uses(
        "// crate::serving in a comment\nuse crate::{model::{a, b},\n    serving::Models};\nlet x = crate::serving::X;",
        &modules,
    );
    assert_eq!(
        found,
        vec![
            ("model".into(), 2),
            ("serving".into(), 2),
            ("serving".into(), 4)
        ]
    );
}
