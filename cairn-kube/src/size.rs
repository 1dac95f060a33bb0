//! Byte sizes as people write them on command lines (`4Mi`, `512Ki`, `1048576`).

/// Parses a size in bytes: a number, optionally with a binary suffix (`Ki`, `Mi`, `Gi`, with or without a
/// trailing `B`), as in `--max-object-size 8Mi`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let shift = match unit.trim_end_matches('B') {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => return Err(format!("invalid size {text:?}: write bytes or a number with Ki, Mi or Gi (e.g. 8Mi)")),
    };
    number.parse::<u64>().ok().and_then(|n| n.checked_mul(1 << shift)).filter(|n| *n > 0).ok_or_else(|| {
        format!("invalid size {text:?}: write a positive number of bytes, or with Ki, Mi or Gi (e.g. 8Mi)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4Mi"), Ok(4 << 20));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("0").is_err() && parse_size("4MB").is_err() && parse_size("x").is_err());
        assert!(parse_size("99999999999Gi").is_err());
    }
}
