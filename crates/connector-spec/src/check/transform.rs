//! `transform` lists (a stream's and `defaults.transform`): field paths well formed,
//! `add` templates compile and read only what exists where they run.

use super::templates::{self, Scope};
use super::{Ctx, Parts, join};
use crate::transform::{Paths, Step, path_problem};

/// Checks the steps of the `transform` list at `ptr`; `scope` is where its templates run.
pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, steps: &[Step], scope: Scope) {
    let scope = Scope {
        record: true,
        ..scope
    };
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{ptr}/{i}/{}", step.kind());
        match step {
            Step::Add(fields) => {
                empty(cx, &at, fields.is_empty());
                for (field, t) in fields {
                    let p = join(&at, field);
                    path(cx, cx.key(&p), field);
                    templates::check(cx, parts, &p, t, scope);
                    no_secret(cx, parts, &p, t);
                }
            }
            Step::Rename(fields) => {
                empty(cx, &at, fields.is_empty());
                for (from, to) in fields {
                    let p = join(&at, from);
                    path(cx, cx.key(&p), from);
                    path(cx, cx.value(&p), to);
                }
            }
            Step::Remove(paths) | Step::Lift(paths) | Step::Keep(paths) => {
                list(cx, &at, paths);
            }
        }
    }
}

/// An `add` template must not read a secret: its value would be written into the output.
fn no_secret(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, t: &crate::Template) {
    let Ok(vars) = t.variables() else {
        return;
    };
    for var in vars {
        let Some(name) = var
            .strip_prefix("config.")
            .map(|v| v.split('.').next().unwrap_or(v))
        else {
            continue;
        };
        if parts.config.iter().any(|(n, d)| n == name && d.secret) {
            cx.error(
                cx.value(ptr),
                format!("`config.{name}` is a secret, and `add` would write it into every record"),
                Some("secrets never reach the output; remove it from this template".into()),
            );
        }
    }
}

/// Each path of a `remove`, `lift` or `keep`.
fn list(cx: &mut Ctx<'_>, at: &str, paths: &Paths) {
    match paths {
        Paths::One(p) => path(cx, cx.value(at), p),
        Paths::Many(ps) => {
            empty(cx, at, ps.is_empty());
            for (j, p) in ps.iter().enumerate() {
                path(cx, cx.value(&format!("{at}/{j}")), p);
            }
        }
    }
}

fn path(cx: &mut Ctx<'_>, loc: crate::diagnostic::Location, p: &str) {
    if let Some(problem) = path_problem(p) {
        cx.error(loc, problem, None);
    }
}

fn empty(cx: &mut Ctx<'_>, at: &str, is_empty: bool) {
    if is_empty {
        let kind = at.rsplit('/').next().unwrap_or_default();
        cx.error(
            cx.value(at),
            format!("`{kind}` names no field"),
            Some("list at least one field, or remove the step".into()),
        );
    }
}
