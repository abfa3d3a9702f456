//! Masking secrets wherever text leaves the process: logs, errors, progress, URLs.

use url::Url;

/// Secrets shorter than this many characters are not masked in free text: masking a
/// one- or two-letter value would mangle every line (and the pattern of the masks would
/// give the value away). Such a secret draws a warning at the start of a run instead.
pub const MIN_MASKED_CHARS: usize = 4;

/// Whether a secret is too short to be masked in free text (see [`MIN_MASKED_CHARS`]).
pub fn too_short_to_mask(secret: &str) -> bool {
    secret.chars().count() < MIN_MASKED_CHARS
}

/// Replaces every known secret (and its URL-encoded form) with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
    /// Secrets too short to mask: still never sent where credentials must not go.
    short: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values; values too short to mask are left out.
    pub fn new(secrets: Vec<String>) -> Self {
        let (secrets, short): (Vec<String>, Vec<String>) = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .partition(|s| !too_short_to_mask(s));
        let mut needles = Vec::new();
        for s in secrets {
            let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if encoded != s {
                needles.push(encoded);
            }
            needles.push(s);
        }
        // Longest first, so a secret that contains another is masked whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Self { needles, short }
    }

    /// Adds a secret learnt at run time, such as an OAuth2 access token (and its
    /// URL-encoded form, as [`new`](Self::new) does).
    pub fn add(&mut self, secret: &str) {
        if too_short_to_mask(secret) {
            if !secret.is_empty() && !self.short.iter().any(|s| s == secret) {
                self.short.push(secret.to_owned());
            }
            return;
        }
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for s in [secret.to_owned(), encoded] {
            if !self.needles.contains(&s) {
                self.needles.push(s);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// Whether a text holds a known secret, e.g. a spec header built from one. Short
    /// secrets count here: deciding where a header may go must not miss one.
    pub fn contains(&self, text: &str) -> bool {
        self.needles
            .iter()
            .chain(&self.short)
            .any(|n| text.contains(n.as_str()))
    }

    /// The text with every secret masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), "***");
            }
        }
        out
    }

    /// A URL for printing: secrets masked, and the values of the named query parameters too.
    pub fn url(&self, url: &Url, secret_params: &[&str]) -> String {
        let mut u = url.clone();
        if !secret_params.is_empty() && u.query().is_some() {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret_params.iter().any(|p| p.eq_ignore_ascii_case(&k)) {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        let _ = u.set_password(None);
        self.redact(u.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_encoded_and_params() {
        let r = Redactor::new(vec!["s3cr3t/+".into(), String::new()]);
        assert_eq!(r.redact("a s3cr3t/+ b"), "a *** b");
        let u = Url::parse("http://h/p?api_key=s3cr3t%2F%2B&x=1&token=abc").unwrap();
        let shown = r.url(&u, &["token"]);
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("abc"),
            "{shown}"
        );
        assert!(shown.contains("x=1"), "{shown}");
    }

    #[test]
    fn learnt_secrets_are_masked_in_both_forms_and_detected() {
        let mut r = Redactor::new(vec!["key1".into(), "ab".into()]);
        r.add("dXNlcjpwYXNz+/==");
        assert_eq!(r.redact("Basic dXNlcjpwYXNz+/=="), "Basic ***");
        assert_eq!(r.redact("a=dXNlcjpwYXNz%2B%2F%3D%3D"), "a=***");
        assert!(r.contains("Token key1"));
        assert!(r.contains("Token ab"));
        assert!(!r.contains("Token other"));
    }

    #[test]
    fn short_secrets_are_not_masked_in_free_text() {
        let r = Redactor::new(vec!["abc".into(), "abcd".into()]);
        assert_eq!(r.redact("abc abcd"), "abc ***");
        assert!(too_short_to_mask("é") && !too_short_to_mask("éééé"));
    }
}
