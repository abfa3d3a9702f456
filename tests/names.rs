//! Names cannot leave the output folder: a stream, webhook or push target named like a
//! path (`../../../victim`, an absolute path, one with a newline) is refused with its
//! file:line:col by every command, before any file is created or any request is sent.

mod support;

use std::path::{Path, PathBuf};

use support::{Reply, Sandbox, serve};

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn spec_with(section: &str, name: &str) -> String {
    let head = "version: 1\nname: shop\nconfig:\n  base_url: { type: string }\nhttp:\n  base_url: \"{{ config.base_url }}\"\n";
    let body = match section {
        "streams" => "    path: /items\n    records: $.data[*]\n",
        "webhooks" => {
            "    path: /hook\n    signature: { scheme: hmac_sha256, header: X-Sig, secrets: [\"s\"] }\n"
        }
        _ => "    path: /orders\n    idempotency: { key_field: id }\n",
    };
    // A valid stream first, so a sync would have something to write.
    format!(
        "{head}streams:\n  ok:\n    path: /items\n    records: $.data[*]\n{}  {name:?}:\n{body}",
        if section == "streams" {
            String::new()
        } else {
            format!("{section}:\n")
        }
    )
}

#[test]
fn a_name_that_is_a_path_is_refused_before_anything_is_written_or_sent() {
    let api = serve(|_| Reply::json(r#"{"data": [{"id": 1}]}"#));
    let base = format!("base_url={}", api.url());
    for section in ["streams", "webhooks", "push"] {
        let sb = Sandbox::new();
        let work = sb.path().join("a/b/c");
        std::fs::create_dir_all(&work).unwrap();
        let absolute = sb.path().join("absolute_victim");
        for name in [
            "../../../victim".to_owned(),
            absolute.display().to_string(),
            "orders\nvictim".to_owned(),
        ] {
            let text = spec_with(section, &name);
            let spec = work.join("spec.yaml");
            std::fs::write(&spec, &text).unwrap();
            let spec = spec.display().to_string();
            let out = work.join("out").display().to_string();
            // The name's key is on the spec's last-but-one or -two line: find it.
            let line = text.lines().position(|l| l.starts_with("  \"")).unwrap() + 1;
            let at = format!("{spec}:{line}:3: error: ");
            let what = match section {
                "streams" => "cannot be a stream name",
                "webhooks" => "cannot be a webhook name",
                _ => "cannot be a push target name",
            };
            let commands: Vec<Vec<&str>> = vec![
                vec!["validate", &spec],
                vec!["sync", &spec, "--out", &out, "--set", &base],
                vec![
                    "serve",
                    &spec,
                    "--out",
                    &out,
                    "--listen",
                    "127.0.0.1:0",
                    "--set",
                    &base,
                ],
                vec![
                    "push", &spec, "--target", "x", "--input", "-", "--set", &base,
                ],
                vec!["state", "reset", &spec, "--out", &out],
            ];
            for args in commands {
                let run = sb.run(&args);
                run.expect_code(2);
                let printed = format!("{}{}", run.stdout, run.stderr);
                assert!(
                    printed.contains(&at) && printed.contains(what),
                    "{section} {name:?} {args:?}: no `{at}...{what}` in:\n{printed}"
                );
                assert!(
                    printed.contains("lowercase letters, digits and `_`"),
                    "{printed}"
                );
            }
            assert_eq!(
                files_under(sb.path()),
                [PathBuf::from("a/b/c/spec.yaml")],
                "{section} {name:?}: a file was created"
            );
        }
    }
    assert!(api.requests().is_empty(), "a request was sent");
}
