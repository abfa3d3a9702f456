//! The one rule for every name that becomes part of a file name: the connector (its
//! default output folder), streams (`<stream>.jsonl`), webhooks (their output file when
//! they name no stream) and push targets (`push-<target>.results.jsonl`).
//!
//! Lowercase ASCII letters, digits and `_`, starting with a letter, at most 64 characters:
//! no `/`, `.`, `..`, NUL, newline or absolute path can ever reach a path built from a name.

/// The pattern, as the JSON Schema states it.
pub const NAME_PATTERN: &str = r"^[a-z][a-z0-9_]{0,63}$";

/// The longest name, in bytes.
pub const NAME_MAX: usize = 64;

/// What the pattern allows, in words, for error messages.
pub const NAME_RULE: &str =
    "lowercase letters, digits and `_`, starting with a letter, at most 64 characters";

/// Whether `name` follows [`NAME_PATTERN`], so it is safe as part of a file name.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= NAME_MAX
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_a_folder_are_refused() {
        for bad in [
            "",
            "../../../victim",
            "..",
            ".",
            "/etc/passwd",
            "a/b",
            "a\nb",
            "a\0b",
            "a b",
            "Orders",
            "1st",
            "_x",
            "order-items",
            "orders.jsonl",
            "é",
            &"a".repeat(NAME_MAX + 1),
        ] {
            assert!(!is_name(bad), "{bad:?} accepted");
        }
        for good in ["a", "orders", "order_items", "v2", &"a".repeat(NAME_MAX)] {
            assert!(is_name(good), "{good:?} refused");
        }
    }

    #[test]
    fn the_function_and_the_schema_pattern_agree() {
        let re = jsonschema::validator_for(
            &serde_json::json!({ "type": "string", "pattern": NAME_PATTERN }),
        )
        .unwrap();
        for s in [
            "a",
            "orders_2",
            "A",
            "a-b",
            "../x",
            "a\n",
            &"a".repeat(64),
            &"a".repeat(65),
        ] {
            assert_eq!(re.is_valid(&serde_json::json!(s)), is_name(s), "{s:?}");
        }
    }
}
