//! The README runs as written. Every shell block of the quick start, importing,
//! training (in the server and offline), OIP v2 and explanation sections runs in a
//! fresh directory, section by section, with `cargo run --release --` standing for
//! this build's binary and `localhost:8080` for a free port. Each output the
//! README shows is compared: a JSON block after a command, or `# ` comment lines
//! after it (their `"key": value` pairs; ids and times are not compared, numbers
//! to 1e-3 relative).

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The sections whose shell blocks run, in README order.
const SECTIONS: &[&str] = &[
    "Quick start",
    "Importing PyTorch weights",
    "Training in the server",
    "Open Inference Protocol v2 (KServe, Triton) and OpenAPI",
    "Explanations",
];

/// A fenced block and the section it is in.
struct Block {
    section: String,
    lang: String,
    code: String,
    line: usize,
}

fn blocks(readme: &str) -> Vec<Block> {
    let (mut out, mut section, mut open) = (Vec::new(), String::new(), None::<Block>);
    for (n, line) in readme.lines().enumerate() {
        if let Some(mut block) = open.take() {
            if line.starts_with("```") {
                out.push(block);
            } else {
                block.code.push_str(line);
                block.code.push('\n');
                open = Some(block);
            }
        } else if let Some(lang) = line.strip_prefix("```") {
            open = Some(Block {
                section: section.clone(),
                lang: lang.trim().to_string(),
                code: String::new(),
                line: n + 1,
            });
        } else if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_string();
        }
    }
    out
}

/// A command (continuation lines and quoted line breaks joined, a trailing
/// comment dropped) and the `# ` lines that follow it (the output the README shows).
fn commands(code: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in code.lines() {
        if pending.is_empty() && line.trim_start().starts_with('#') {
            if let Some((_, shown)) = out.last_mut() {
                shown.push_str(line.trim_start().trim_start_matches('#'));
                shown.push('\n');
            }
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        // A quoted argument may span lines (a JSON body).
        if pending.matches('\'').count() % 2 == 1 {
            pending.push('\n');
            continue;
        }
        let command = std::mem::take(&mut pending);
        // A comment after the command (outside quotes: none of ours has ` #` in a
        // quoted string).
        let command = command.split(" # ").next().unwrap_or("").trim().to_string();
        if !command.is_empty() {
            out.push((command, String::new()));
        }
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One section's directory, its server and its commands.
struct Run {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
    /// The last job id a `/train` answer named.
    job: Option<String>,
}

impl Run {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for part in ["examples/data", "config", "tests/data/pytorch"] {
            copy_dir(&repo.join(part), &dir.path().join(part));
        }
        Self {
            dir,
            port: free_port(),
            server: None,
            job: None,
        }
    }

    /// The command as it runs here.
    fn rewrite(&self, command: &str) -> String {
        let mut c = command
            .replace("cargo run --release --", env!("CARGO_BIN_EXE_kiln"))
            .replace("localhost:8080", &format!("127.0.0.1:{}", self.port));
        if let Some(job) = &self.job {
            c = c.replace("job-3f2a...", job);
        }
        c
    }

    /// Starts `command` (a `serve`) in the background on this run's port.
    fn serve(&mut self, command: &str) {
        self.stop();
        let command = format!(
            "exec {} --listen 127.0.0.1:{}",
            self.rewrite(command),
            self.port
        );
        let child = Command::new("bash")
            .args(["-c", &command])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let (ok, _) = self.shell(&format!("curl -sf 127.0.0.1:{}/health/ready", self.port));
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{command}: not ready within 60 s");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `command` in bash here: (success, stdout).
    fn shell(&self, command: &str) -> (bool, String) {
        let mut child = Command::new("bash")
            .args(["-c", command])
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (child.wait().unwrap().success(), out)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Keys whose values differ from run to run (`completeness_error` is a
/// quadrature's error estimate, the difference of two near sums: another CPU's
/// rounding moves it by more than the printed digits).
const VARYING: &[&str] = &[
    "id",
    "prediction_ids",
    "created_at_ms",
    "started_at_ms",
    "completeness_error",
];

/// Numbers as the README prints them, to 1e-3 relative (another CPU's kernels may
/// round the last printed digits differently).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 * a.abs().max(b.abs()).max(1e-2)
}

/// Whether `got` matches the JSON the README shows (`want`), varying keys aside.
fn matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len()
                && w.iter().all(|(k, v)| {
                    VARYING.contains(&k.as_str()) || g.get(k).is_some_and(|x| matches(v, x))
                })
        }
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| matches(a, b))
        }
        (Value::Number(w), Value::Number(g)) => close(w.as_f64().unwrap(), g.as_f64().unwrap()),
        _ => want == got,
    }
}

/// The first value under `key` anywhere in `v`.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key).or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// Checks `got` against comment lines showing an answer: as JSON when they
/// parse, else each `"key":scalar` pair they hold (a `...` elides the rest).
fn check_shown(shown: &str, got: &Value, what: &str) {
    if let Ok(want) = serde_json::from_str::<Value>(shown) {
        assert!(matches(&want, got), "{what}: shown {want}, got {got}");
        return;
    }
    let mut checked = 0;
    // Pairs: "key":value, value up to `,` or `}` (strings re-quoted).
    let mut text = shown;
    while let Some(start) = text.find('"') {
        let after = &text[start + 1..];
        let Some(end) = after.find('"') else { break };
        let key = &after[..end];
        let rest = &after[end + 1..];
        text = rest;
        let Some(value) = rest.strip_prefix(':') else {
            continue;
        };
        let raw: String = if let Some(s) = value.strip_prefix('"') {
            match s.find('"') {
                Some(e) => format!("\"{}\"", &s[..e]),
                None => continue,
            }
        } else {
            value
                .chars()
                .take_while(|c| !matches!(c, ',' | '}' | '\n'))
                .collect()
        };
        if raw.contains("...") || raw.starts_with('{') || VARYING.contains(&key) {
            continue;
        }
        let Ok(want) = serde_json::from_str::<Value>(raw.trim()) else {
            continue;
        };
        let got_value = find(got, key).unwrap_or_else(|| panic!("{what}: no {key} in {got}"));
        assert!(
            matches(&want, got_value),
            "{what}: {key} shown {want}, got {got_value}"
        );
        checked += 1;
    }
    assert!(checked > 0, "{what}: nothing compared in {shown:?}");
}

#[test]
fn the_readme_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "the README's commands need curl (and bash)"
    );
    let all = blocks(&readme);
    let (mut ran, mut compared) = (0, Vec::new());
    for &section in SECTIONS {
        let mut run = Run::new();
        let in_section: Vec<&Block> = all.iter().filter(|b| b.section == section).collect();
        assert!(!in_section.is_empty(), "no blocks in {section}");
        for (i, block) in in_section.iter().enumerate() {
            if block.lang != "sh" {
                continue;
            }
            // A JSON block right after shows the last command's answer.
            let shown_json = in_section
                .get(i + 1)
                .filter(|b| b.lang == "json")
                .map(|b| b.code.clone());
            let cmds = commands(&block.code);
            for (k, (command, shown)) in cmds.iter().enumerate() {
                let what = format!("README line {}: {command}", block.line);
                if command.starts_with("cargo test") {
                    continue; // the suite this test is part of
                }
                if command.contains("-- serve") {
                    run.serve(command);
                    ran += 1;
                    continue;
                }
                if command.starts_with("curl") && run.server.is_none() {
                    run.serve("cargo run --release -- serve");
                }
                // Files the import example names.
                if command.contains("weights=@model.pth") {
                    let d = run.dir.path();
                    std::fs::copy(
                        d.join("tests/data/pytorch/seed_mlp.pth"),
                        d.join("model.pth"),
                    )
                    .unwrap();
                    std::fs::copy(d.join("config/models/seed-mlp.toml"), d.join("net.toml"))
                        .unwrap();
                }
                let (ok, out) = run.shell(&run.rewrite(command));
                assert!(ok, "{what}: failed");
                ran += 1;
                let answer: Option<Value> = serde_json::from_str(out.trim()).ok();
                if let Some(id) = answer.as_ref().and_then(|a| a["id"].as_str())
                    && id.starts_with("job-")
                {
                    run.job = Some(id.to_string());
                }
                if command.starts_with("curl") {
                    let answer = answer.unwrap_or_else(|| panic!("{what}: not JSON: {out}"));
                    assert!(!answer["error"].is_string(), "{what}: {answer}");
                    if !shown.trim().is_empty() {
                        check_shown(shown, &answer, &what);
                        compared.push(block.line);
                    }
                    if k + 1 == cmds.len()
                        && let Some(json) = &shown_json
                    {
                        let want: Value = serde_json::from_str(json).unwrap();
                        assert!(
                            matches(&want, &answer),
                            "{what}: shown {want}, got {answer}"
                        );
                        compared.push(block.line);
                    }
                } else if command.contains("-- predict") {
                    let lines = out.lines().count();
                    assert!(lines > 100, "{what}: {lines} lines");
                    assert!(
                        out.lines()
                            .all(|l| serde_json::from_str::<Value>(l).is_ok())
                    );
                }
            }
        }
        run.stop();
    }
    assert!(ran >= 12, "{ran} commands ran");
    // The quick start's answer, the queued job, the OIP v2 answer, the explanation.
    assert!(
        compared.len() >= 4,
        "outputs compared at README lines {compared:?}"
    );
}
