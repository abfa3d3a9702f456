//! `runtime validate`: finding spec files, checking them, rendering the findings.
//!
//! Everything but the printing lives here, so the command line stays a thin shell and
//! the output formats can be tested without a process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::diagnostic::{Diagnostic, Location, Severity};
use crate::load;

/// Diagnostics shown per file in text output; the rest are counted.
const MAX_SHOWN: usize = 100;

/// Longest source line shown in a snippet, in characters.
const MAX_LINE: usize = 120;

/// Folders deeper than this below a given path are not searched.
const MAX_DEPTH: usize = 32;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `file:line:col: error: message`, the source line and a caret, like rustc and ruff.
    Text,
    /// One JSON document with every diagnostic.
    Json,
    /// GitHub Actions workflow commands (`::error file=...,line=...::message`).
    Github,
}

/// The findings about one spec file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file, as found.
    pub path: PathBuf,
    /// Its text, when it could be read, for source snippets.
    pub source: Option<String>,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    /// Errors in the file.
    pub fn errors(&self) -> usize {
        count(&self.diagnostics, Severity::Error)
    }

    /// Warnings in the file.
    pub fn warnings(&self) -> usize {
        count(&self.diagnostics, Severity::Warning)
    }
}

/// The findings of one `validate` run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Each spec file checked, in the order found.
    pub files: Vec<FileReport>,
    /// Problems with the paths themselves: missing, or a folder without specs.
    pub problems: Vec<Diagnostic>,
}

fn count(ds: &[Diagnostic], sev: Severity) -> usize {
    ds.iter().filter(|d| d.severity == sev).count()
}

/// Checks one spec file.
pub fn check_file(path: &Path) -> FileReport {
    let text = match load::read(path) {
        Ok(t) => t,
        Err(e) => {
            return FileReport {
                path: path.to_owned(),
                source: e.source_text,
                diagnostics: e.diagnostics,
            };
        }
    };
    let diagnostics = match load::load_str(path, &text) {
        Ok(spec) => spec.warnings,
        Err(e) => e.diagnostics,
    };
    FileReport {
        path: path.to_owned(),
        source: Some(text),
        diagnostics,
    }
}

/// Finds the spec files named by `paths` (folders are searched for `*.yaml` and `*.yml`)
/// and checks each.
pub fn validate(paths: &[PathBuf]) -> Report {
    let (files, problems) = find_specs(paths);
    Report {
        files: files.iter().map(|p| check_file(p)).collect(),
        problems,
    }
}

/// The spec files named by `paths`, each once, and the paths that name none.
///
/// A file named directly is checked whatever its extension. Folders are searched
/// recursively in sorted order, skipping hidden entries and symlinked folders.
pub fn find_specs(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut problems = Vec::new();
    if paths.is_empty() {
        problems.push(Diagnostic::error(
            PathBuf::from("."),
            Location::default(),
            "no paths given; name spec files or folders of them",
        ));
    }
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(Diagnostic::error(
                path,
                Location::default(),
                "no such file or folder",
            )),
            Err(e) => problems.push(Diagnostic::error(
                path,
                Location::default(),
                format!("cannot read this path: {e}"),
            )),
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                let mut errors = Vec::new();
                walk(path, 0, &mut found, &mut errors);
                found.sort();
                if found.is_empty() && errors.is_empty() {
                    problems.push(
                        Diagnostic::error(
                            path,
                            Location::default(),
                            "no spec files (*.yaml, *.yml) in this folder",
                        )
                        .with_help("name spec files directly, or a folder that holds some"),
                    );
                }
                problems.extend(errors);
                files.extend(found);
            }
            Ok(_) => files.push(path.clone()),
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    (files, problems)
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>, errors: &mut Vec<Diagnostic>) {
    if depth > MAX_DEPTH {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(Diagnostic::error(
                dir,
                Location::default(),
                format!("cannot read this folder: {e}"),
            ));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, depth + 1, found, errors);
        } else if is_spec_name(&path) && (kind.is_file() || path.is_file()) {
            found.push(path);
        }
    }
}

fn is_spec_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

impl Report {
    /// Spec files checked.
    pub fn files_checked(&self) -> usize {
        self.files.len()
    }

    /// Spec files with at least one error.
    pub fn invalid(&self) -> usize {
        self.files.iter().filter(|f| f.errors() > 0).count()
    }

    /// Errors in all files, plus problems with the paths.
    pub fn errors(&self) -> usize {
        self.files.iter().map(FileReport::errors).sum::<usize>() + self.problems.len()
    }

    /// Warnings in all files.
    pub fn warnings(&self) -> usize {
        self.files.iter().map(FileReport::warnings).sum()
    }

    /// True when nothing is an error (warnings are allowed).
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }

    /// `3 files checked, 1 invalid, 4 errors` (and the warnings, when there are some).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}, {} invalid, {}",
            plural(self.files_checked(), "file checked", "files checked"),
            self.invalid(),
            plural(self.errors(), "error", "errors"),
        );
        if self.warnings() > 0 {
            s.push_str(&format!(
                ", {}",
                plural(self.warnings(), "warning", "warnings")
            ));
        }
        s
    }

    /// The whole report in `format`, ending with a newline.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.render_text(),
            Format::Json => self.render_json(),
            Format::Github => self.render_github(),
        }
    }

    fn render_text(&self) -> String {
        let mut out = String::new();
        for d in &self.problems {
            out.push_str(&render_diagnostic(d, None));
            out.push('\n');
        }
        for f in &self.files {
            for d in f.diagnostics.iter().take(MAX_SHOWN) {
                out.push_str(&render_diagnostic(d, f.source.as_deref()));
                out.push('\n');
            }
            if f.diagnostics.len() > MAX_SHOWN {
                let _ = writeln!(
                    out,
                    "{}: ... and {} more not shown\n",
                    f.path.display(),
                    f.diagnostics.len() - MAX_SHOWN
                );
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn render_json(&self) -> String {
        let diagnostics: Vec<Value> = self
            .problems
            .iter()
            .chain(self.files.iter().flat_map(|f| f.diagnostics.iter()))
            .map(diagnostic_json)
            .collect();
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                json!({
                    "path": f.path.display().to_string(),
                    "valid": f.errors() == 0,
                    "errors": f.errors(),
                    "warnings": f.warnings(),
                })
            })
            .collect();
        let doc = json!({
            "summary": {
                "files_checked": self.files_checked(),
                "invalid": self.invalid(),
                "errors": self.errors(),
                "warnings": self.warnings(),
                "ok": self.is_ok(),
            },
            "files": files,
            "diagnostics": diagnostics,
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }

    fn render_github(&self) -> String {
        let mut out = String::new();
        for d in self
            .problems
            .iter()
            .chain(self.files.iter().flat_map(|f| f.diagnostics.iter()))
        {
            out.push_str(&github_line(d));
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as rustc and ruff print them: the position, the source line, a caret
/// under the span, and the help.
pub fn render_diagnostic(d: &Diagnostic, source: Option<&str>) -> String {
    let mut out = String::new();
    let sev = severity_word(d.severity);
    let loc = d.location;
    if loc.line == 0 {
        let _ = writeln!(out, "{}: {sev}: {}", d.file.display(), d.message);
    } else {
        let _ = writeln!(
            out,
            "{}:{}:{}: {sev}: {}",
            d.file.display(),
            loc.line,
            loc.col,
            d.message
        );
    }
    let line_text = source
        .filter(|_| loc.line > 0)
        .and_then(|s| s.lines().nth(loc.line - 1));
    let number = loc.line.to_string();
    let pad = if loc.line > 0 {
        " ".repeat(number.len())
    } else {
        " ".to_owned()
    };
    if let Some(text) = line_text {
        let shown: Vec<char> = expand_tabs(text).chars().collect();
        let prefix: String = text.chars().take(loc.col.saturating_sub(1)).collect();
        let start = expand_tabs(&prefix).chars().count();
        // A very long line (minified YAML, hostile input) is cut to a window around the span.
        let (from, to) = if shown.len() > MAX_LINE {
            let from = start.saturating_sub(MAX_LINE / 3);
            (from, (from + MAX_LINE).min(shown.len()))
        } else {
            (0, shown.len())
        };
        let len = loc.len.max(1).min(to.saturating_sub(start).max(1));
        let mut line: String = shown[from.min(to)..to].iter().collect();
        let mut caret_at = start.saturating_sub(from);
        if from > 0 {
            line.insert_str(0, "...");
            caret_at += 3;
        }
        if to < shown.len() {
            line.push_str("...");
        }
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{number} | {line}");
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(caret_at), "^".repeat(len));
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    out
}

fn expand_tabs(s: &str) -> String {
    s.replace('\t', "    ")
}

fn diagnostic_json(d: &Diagnostic) -> Value {
    let has_pos = d.location.line > 0;
    json!({
        "file": d.file.display().to_string(),
        "line": has_pos.then_some(d.location.line),
        "column": has_pos.then_some(d.location.col),
        "end_column": has_pos.then_some(d.location.col + d.location.len.max(1)),
        "severity": severity_word(d.severity),
        "message": d.message,
        "help": d.help,
    })
}

/// A GitHub Actions workflow command for one diagnostic.
fn github_line(d: &Diagnostic) -> String {
    let mut props = format!("file={}", escape_property(&d.file.display().to_string()));
    if d.location.line > 0 {
        let l = d.location;
        let _ = write!(
            props,
            ",line={},col={},endColumn={}",
            l.line,
            l.col,
            l.col + l.len.max(1)
        );
    }
    let mut message = d.message.clone();
    if let Some(h) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(h);
    }
    format!(
        "::{} {props}::{}",
        severity_word(d.severity),
        escape_data(&message)
    )
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, col: usize, len: usize) -> Diagnostic {
        Diagnostic::error("a.yaml", Location { line, col, len }, "bad `x`").with_help("fix it")
    }

    #[test]
    fn text_has_caret_under_span() {
        let src = "version: 1\n\tname: Demo\n";
        let out = render_diagnostic(&diag(2, 8, 4), Some(src));
        assert_eq!(
            out,
            "a.yaml:2:8: error: bad `x`\n  |\n2 |     name: Demo\n  |           ^^^^\n  = help: fix it\n"
        );
    }

    #[test]
    fn caret_is_clamped_to_the_line() {
        let out = render_diagnostic(&diag(1, 10, 50), Some("version: 1\n"));
        assert!(out.contains("\n  |          ^\n"), "{out}");
        let out = render_diagnostic(&diag(0, 0, 0), None);
        assert_eq!(out, "a.yaml: error: bad `x`\n  = help: fix it\n");
    }

    #[test]
    fn long_lines_are_cut_around_the_span() {
        let src = format!("{}bad{}\n", "a".repeat(300), "b".repeat(300));
        let out = render_diagnostic(&diag(1, 301, 3), Some(&src));
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[2].starts_with("1 | ...a") && lines[2].ends_with("b..."),
            "{out}"
        );
        assert!(lines[2].chars().count() < 140, "{out}");
        let caret = lines[3].find('^').unwrap();
        assert_eq!(&lines[2][caret..caret + 3], "bad", "{out}");
        assert!(lines[3].ends_with("^^^"), "{out}");
    }

    #[test]
    fn github_escapes() {
        let mut d = diag(3, 2, 5);
        d.file = PathBuf::from("dir,x/a:b.yaml");
        d.message = "50% bad\nreally".into();
        assert_eq!(
            github_line(&d),
            "::error file=dir%2Cx/a%3Ab.yaml,line=3,col=2,endColumn=7::50%25 bad%0Areally%0Ahelp: fix it"
        );
    }

    #[test]
    fn summary_counts() {
        let r = Report {
            files: vec![
                FileReport {
                    path: "a.yaml".into(),
                    source: None,
                    diagnostics: vec![diag(1, 1, 1), diag(2, 1, 1)],
                },
                FileReport {
                    path: "b.yaml".into(),
                    source: None,
                    diagnostics: vec![Diagnostic::warning("b.yaml", Location::default(), "w")],
                },
            ],
            problems: Vec::new(),
        };
        assert_eq!(
            r.summary(),
            "2 files checked, 1 invalid, 2 errors, 1 warning"
        );
        assert!(!r.is_ok());
        let j: Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(j["summary"]["errors"], 2);
        assert_eq!(j["diagnostics"][0]["end_column"], 2);
        assert_eq!(j["diagnostics"][2]["line"], Value::Null);
    }
}
