//! `webhooks` and `push`: stream references, signatures, idempotency keys.

use super::templates::{self, Scope};
use super::{Ctx, Parts, join, paths};
use crate::model::Signature;
use crate::suggest;

pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts) {
    webhooks(cx, parts);
    push(cx, parts);
}

fn webhooks(cx: &mut Ctx<'_>, parts: &Parts) {
    let mut paths_seen: Vec<(&str, &str)> = Vec::new();
    for (name, hook) in &parts.webhooks {
        let base = join("/webhooks", name);
        let p = |f: &str| format!("{base}/{f}");
        if let Some((other, _)) = paths_seen.iter().find(|(_, path)| *path == hook.path) {
            cx.error(
                cx.value(&p("path")),
                format!(
                    "webhook path `{}` is already served by webhook `{other}`",
                    hook.path
                ),
                Some("give each webhook its own path".into()),
            );
        }
        paths_seen.push((name, &hook.path));
        if let Some(stream) = &hook.stream
            && !parts.stream_names.contains(stream)
        {
            let names = parts.stream_names.iter().map(String::as_str);
            let help = suggest::did_you_mean(stream, names.clone())
                .or_else(|| Some(format!("streams in this spec: {}", suggest::list(names))));
            cx.error(
                cx.value(&p("stream")),
                format!("webhook `{name}` names stream `{stream}`, which does not exist"),
                help,
            );
        }
        if hook.version_field.is_some() {
            let key_missing = match &hook.stream {
                None => Some(
                    "`version_field` keeps the latest version of each record by the primary key of the webhook's `stream`, and this webhook has no `stream`".to_owned(),
                ),
                Some(s) => match parts.stream(s) {
                    Some(st) if st.primary_key.is_none() => Some(format!(
                        "`version_field` keeps the latest version of each record by primary key, and stream `{s}` has no `primary_key`"
                    )),
                    _ => None,
                },
            };
            if let Some(message) = key_missing {
                cx.error(
                    cx.key(&p("version_field")),
                    message,
                    Some("add `primary_key` to the stream, or remove `version_field`".into()),
                );
            }
        }
        if let Some(e) = &hook.event_id {
            paths::jsonpath(cx, &p("event_id"), e);
        }
        if hook.event_id.is_some() && hook.event_id_header.is_some() {
            cx.error(
                cx.key(&p("event_id_header")),
                "`event_id` and `event_id_header` are both set; the event id comes from one place",
                None,
            );
        }
        if let Some(r) = &hook.record {
            paths::jsonpath(cx, &p("record"), r);
        }
        let sp = |f: &str| format!("{base}/signature/{f}");
        let (secrets, tolerance) = match &hook.signature {
            Signature::HmacSha256 { secrets, .. } => (secrets, None),
            Signature::Stripe {
                secrets, tolerance, ..
            }
            | Signature::StandardWebhooks { secrets, tolerance } => (secrets, Some(tolerance)),
        };
        for (i, s) in secrets.iter().enumerate() {
            templates::check(
                cx,
                parts,
                &format!("{}/{i}", sp("secrets")),
                s,
                Scope::CONFIG,
            );
        }
        if let Some(t) = tolerance {
            paths::duration(cx, &sp("tolerance"), t);
        }
    }
}

fn push(cx: &mut Ctx<'_>, parts: &Parts) {
    let scope = Scope {
        record: true,
        ..Scope::CONFIG
    };
    for (name, target) in &parts.push {
        let base = join("/push", name);
        let p = |f: &str| format!("{base}/{f}");
        templates::check(cx, parts, &p("path"), &target.path, scope);
        for (k, t) in &target.headers {
            templates::check(cx, parts, &join(&p("headers"), k), t, scope);
        }
        if let Some(body) = &target.body {
            templates::check_body(cx, parts, &p("body"), body, scope);
        }
        if let Some(r) = &target.response_id {
            paths::jsonpath(cx, &p("response_id"), r);
        }
        let idem = &target.idempotency;
        match (&idem.key_field, idem.key_fields.is_empty()) {
            (Some(_), false) => cx.error(
                cx.key(&p("idempotency/key_fields")),
                "`key_field` and `key_fields` are both set; the key comes from one of them",
                Some("`key_field` names a record field that already holds the key; `key_fields` derive one".into()),
            ),
            (None, true) => cx.error(
                cx.key(&p("idempotency")),
                format!("push target `{name}` needs `key_field` or `key_fields` to make its idempotency key"),
                Some("e.g. `idempotency: { key_fields: [customer_id, external_id] }`".into()),
            ),
            _ => {}
        }
    }
}
