//! Object names: backups and restores are named like Kubernetes objects (DNS-1123 subdomains), so the same
//! names work as records in a bucket and as objects in a cluster.

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
}
