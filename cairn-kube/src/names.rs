//! Kubernetes names, checked in one place: object names (DNS-1123 subdomains; backups and restores are
//! named so, which makes the same names work as records in a bucket and as objects in a cluster) and
//! namespace and label-style names (DNS-1123 labels), and label values (at most 63 characters).

use sha2::{Digest, Sha256};

/// What a valid name looks like, for error messages.
pub const NAME_RULE: &str =
    "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters";

/// Whether `name` is a DNS-1123 subdomain.
pub fn is_valid_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
}

/// What a valid namespace name looks like, for error messages.
pub const LABEL_RULE: &str =
    "use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

/// Whether `name` is a DNS-1123 label, as namespace names are.
pub fn is_valid_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_valid_name(name)
}

/// Whether `key` is a Kubernetes qualified name, what label and annotation keys must be: an optional DNS-1123
/// subdomain prefix and `/`, then at most 63 letters, digits, `-`, `_` and `.`, starting and ending with a
/// letter or digit.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(is_valid_name);
    prefix_ok && name.len() <= 63 && is_label_value(name) && !name.is_empty()
}

/// Whether `value` is a label value the API server accepts: empty, or at most 63 letters, digits, `-`, `_`
/// and `.`, starting and ending with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= 63
            && edge_ok(value.chars().next())
            && edge_ok(value.chars().last())
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// A label value of at most 63 characters: longer values become their first 57 characters and 6 hex
/// characters of their SHA-256 (Velero's rule).
pub fn label_value(value: &str) -> String {
    if value.len() <= 63 {
        return value.to_owned();
    }
    let digest: String = Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let mut cut = 57;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &value[..cut], &digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_1123_subdomains() {
        for good in ["nightly", "nightly-2026-11-28", "a.b", "0"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "Nightly", "-a", "a-", "a_b", "a b", &"a".repeat(254)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn qualified_names_and_label_values_follow_the_api_server() {
        for good in ["app", "cairn.dev/test-node", "kubernetes.io/os", "A_b.c"] {
            assert!(is_qualified_name(good), "{good}");
        }
        for bad in ["", "/x", "Cairn.dev/x", "a/b/c", "x/", "-a", &"a".repeat(64)] {
            assert!(!is_qualified_name(bad), "{bad}");
        }
        assert!(is_label_value("") && is_label_value("real") && is_label_value("v1.2_3"));
        assert!(!is_label_value("a b") && !is_label_value("-a") && !is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn namespace_names_follow_dns_1123_labels() {
        assert!(is_valid_label("shop-copy") && is_valid_label("a"));
        for bad in ["a.b", "B", "", "-a", &"a".repeat(64)] {
            assert!(!is_valid_label(bad), "{bad}");
        }
    }

    #[test]
    fn long_label_values_are_shortened_like_velero() {
        let long = "x".repeat(70);
        let short = label_value(&long);
        assert_eq!(short.len(), 63);
        assert!(short.starts_with(&"x".repeat(57)));
        assert_eq!(label_value("short"), "short");
    }
}
