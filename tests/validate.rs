//! `runtime validate` end to end: every invalid fixture reports the expected errors at
//! the expected line and column, the three output formats, the summary, exit codes and
//! folder walking, and every connector in `connectors/` validates.
//!
//! Each fixture in `tests/fixtures/invalid/` starts with a title comment and one
//! `# expect: LINE:COL message fragment[ help: help fragment]` line per error it must
//! produce; a fixture must produce exactly those errors and no others.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn runtime() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validate(args: &[&str]) -> Output {
    runtime()
        .arg("validate")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[derive(Debug)]
struct Expect {
    line: u64,
    col: u64,
    message: String,
    help: Option<String>,
}

fn expectations(path: &Path, marker: &str) -> Vec<Expect> {
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| l.strip_prefix(marker))
        .map(|rest| {
            let (pos, text) = rest.trim().split_once(' ').unwrap();
            let (line, col) = pos.split_once(':').unwrap();
            let (message, help) = match text.split_once(" help: ") {
                Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
                None => (text.to_owned(), None),
            };
            Expect {
                line: line.parse().unwrap(),
                col: col.parse().unwrap(),
                message,
                help,
            }
        })
        .collect()
}

fn fixtures() -> Vec<PathBuf> {
    let dir = root().join("tests/fixtures/invalid");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Checks `found` (JSON diagnostics of one file, of one severity) against `expected`.
fn compare(name: &str, expected: &[Expect], found: &[&Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for e in expected {
        let hit = found.iter().any(|d| {
            d["line"] == e.line
                && d["column"] == e.col
                && d["message"].as_str().unwrap_or("").contains(&e.message)
                && e.help
                    .as_ref()
                    .is_none_or(|h| d["help"].as_str().unwrap_or("").contains(h.as_str()))
        });
        if !hit {
            problems.push(format!("{name}: expected {e:?}"));
        }
    }
    if found.len() != expected.len() {
        problems.push(format!(
            "{name}: expected {} diagnostics, got {}: {found:#?}",
            expected.len(),
            found.len()
        ));
    }
    problems
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_errors() {
    let files = fixtures();
    assert!(files.len() >= 40, "only {} fixtures", files.len());
    let out = validate(&["--format", "json", "tests/fixtures/invalid"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["files_checked"], files.len());
    assert_eq!(doc["summary"]["invalid"], files.len());
    let diags = doc["diagnostics"].as_array().unwrap();
    let mut problems = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let expected = expectations(f, "# expect:");
        assert!(!expected.is_empty(), "{name} has no `# expect:` line");
        let errors: Vec<&Value> = diags
            .iter()
            .filter(|d| {
                d["file"].as_str().unwrap_or("").ends_with(&name) && d["severity"] == "error"
            })
            .collect();
        problems.extend(compare(&name, &expected, &errors));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn each_fixture_alone_fails_with_rustc_style_positions() {
    for f in fixtures() {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = validate(&[&rel]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(2), "{rel}:\n{text}");
        for e in expectations(&f, "# expect:") {
            let head = format!("{rel}:{}:{}: error: ", e.line, e.col);
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&head) && l.contains(&e.message)),
                "{rel}: no line `{head}...{}` in:\n{text}",
                e.message
            );
        }
        let n = expectations(&f, "# expect:").len();
        let summary = format!(
            "1 file checked, 1 invalid, {n} error{}",
            if n == 1 { "" } else { "s" }
        );
        assert_eq!(
            text.lines().last(),
            Some(summary.as_str()),
            "{rel}:\n{text}"
        );
        assert!(
            out.stderr.is_empty(),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn text_output_shows_the_line_a_caret_and_help() {
    let out = validate(&["tests/fixtures/invalid/schema_unknown_stream_field.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout(&out),
        "tests/fixtures/invalid/schema_unknown_stream_field.yaml:16:5: error: unknown field `pagnation`\n   \
         |\n16 |     pagnation: { kind: link_header }\n   |     ^^^^^^^^^\n   \
         = help: did you mean `pagination`?\n\n1 file checked, 1 invalid, 1 error\n"
    );
}

#[test]
fn github_output_is_workflow_commands() {
    let out = validate(&[
        "--format",
        "github",
        "tests/fixtures/invalid/schema_auth_kind_unknown.yaml",
        "tests/fixtures/invalid/parent_missing.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "::error file=tests/fixtures/invalid/schema_auth_kind_unknown.yaml,line=7,col=17,endColumn=22::unknown kind `bearr`; expected one of `none`, `bearer`, `api_key`, `basic`, `oauth2_client_credentials`, `oauth2_refresh_token`, `session`, `jwt`, `select`%0Ahelp: did you mean `bearer`?",
            "::error file=tests/fixtures/invalid/parent_missing.yaml,line=17,col=23,endColumn=28::parent stream `order` does not exist%0Ahelp: did you mean `orders`?",
            "2 files checked, 2 invalid, 2 errors",
        ]
    );
}

#[test]
fn json_output_is_one_document() {
    let out = validate(&[
        "--format",
        "json",
        "tests/fixtures/invalid/template_config_typo.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 1);
    assert_eq!(doc["summary"]["ok"], false);
    assert_eq!(doc["files"][0]["valid"], false);
    let d = &doc["diagnostics"][0];
    assert_eq!(
        d["file"],
        "tests/fixtures/invalid/template_config_typo.yaml"
    );
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(9), Some(36))
    );
    assert_eq!(d["end_column"], 49);
    assert_eq!(d["severity"], "error");
    assert_eq!(d["help"], "did you mean `config.api_key`?");
}

const VALID: &str = "version: 1\nname: ok\nhttp: { base_url: \"https://api.example.com\" }\n\
streams:\n  things: { path: /things, records: \"$.things[*]\", primary_key: id }\n";

#[test]
fn summary_counts_files_invalid_files_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), VALID).unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        VALID.replace("name: ok", "name: ok2"),
    )
    .unwrap();
    let four_errors = "version: 1\nname: Bad\nhttp: { base_url: \"https://x\", timeout: later }\n\
streams:\n  s: { path: \"{{ config.nope }}\", records: $.x, dedup: maybe }\n  t: { path: /t }\n";
    std::fs::write(dir.path().join("c.yaml"), four_errors).unwrap();
    let out = runtime()
        .args(["validate"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_eq!(
        text.lines().last(),
        Some("3 files checked, 1 invalid, 4 errors"),
        "{text}"
    );
}

#[test]
fn valid_files_exit_zero_even_with_warnings() {
    let f = root().join("tests/fixtures/valid/warnings.yaml");
    let out = validate(&["--format", "json", "tests/fixtures/valid/warnings.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 0);
    let warnings: Vec<&Value> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "warning")
        .collect();
    let expected = expectations(&f, "# expect-warning:");
    assert!(expected.len() >= 3);
    let problems = compare("warnings.yaml", &expected, &warnings);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let text = stdout(&validate(&["tests/fixtures/valid/warnings.yaml"]));
    assert!(text.contains(": warning: offset pagination"), "{text}");
    assert!(
        text.ends_with("1 file checked, 0 invalid, 0 errors, 3 warnings\n"),
        "{text}"
    );
}

#[test]
fn every_connector_validates() {
    let out = validate(&["connectors/"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(" 0 invalid, 0 errors"), "{text}");
    for e in std::fs::read_dir(root().join("connectors")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            let first = std::fs::read_to_string(&p).unwrap();
            assert!(
                first.starts_with(
                    "# yaml-language-server: $schema=../schemas/connector.schema.json\n"
                ),
                "{} does not start with the yaml-language-server modeline",
                p.display()
            );
        }
    }
}

#[test]
fn missing_paths_and_empty_folders_are_errors() {
    let out = validate(&["no/such/spec.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout(&out),
        "no/such/spec.yaml: error: no such file or folder\n\n0 files checked, 0 invalid, 1 error\n"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a spec").unwrap();
    let out = runtime().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains(": error: no spec files (*.yaml, *.yml) in this folder"),
        "{text}"
    );
}

#[test]
fn folders_are_searched_recursively_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("a/deeper")).unwrap();
    std::fs::create_dir_all(p.join(".hidden")).unwrap();
    std::fs::write(p.join("b.yaml"), "version: 1\n").unwrap();
    std::fs::write(p.join("a/deeper/x.yml"), "version: 1\n").unwrap();
    std::fs::write(p.join("a/notes.md"), "# not a spec").unwrap();
    std::fs::write(p.join(".hidden/z.yaml"), "version: 1\n").unwrap();
    let out = runtime()
        .args(["validate", "--format", "json"])
        .arg(p)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<String> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].ends_with("a/deeper/x.yml") && files[1].ends_with("b.yaml"),
        "{files:?}"
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn broken_pipe_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = runtime()
        .args(["validate", "tests/fixtures/invalid"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(!err.contains("panicked"), "{err}");
}
