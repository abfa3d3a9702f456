//! "Did you mean ...?" for names the user misspelt.

/// The candidate closest to `given`, when one is close enough to be a likely typo.
pub fn closest<'a, I>(given: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = given.to_ascii_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        if c == given {
            continue;
        }
        let score = if c.eq_ignore_ascii_case(given) {
            1.0
        } else {
            strsim::jaro_winkler(&lower, &c.to_ascii_lowercase())
        };
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?`, or `None` when nothing is close.
pub fn did_you_mean<'a, I>(given: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(given, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// `a, b, c` with each name in backticks.
pub fn list<'a, I>(names: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_only() {
        let names = ["pagination", "path", "params", "primary_key"];
        assert_eq!(closest("pagnation", names), Some("pagination"));
        assert_eq!(closest("primary_keys", names), Some("primary_key"));
        assert_eq!(closest("Path", names), Some("path"));
        assert_eq!(closest("zzz", names), None);
        assert_eq!(list(["a", "b"]), "`a`, `b`");
    }
}
