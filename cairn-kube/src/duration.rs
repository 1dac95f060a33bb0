//! Durations in Go's notation (`720h`, `1h30m`, `2s`, `500ms`), which Velero's TTLs and schedules use.

use std::time::Duration;

/// A duration that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {text:?}: {problem}; write it like 720h, 1h30m or 90s")]
pub struct DurationError {
    text: String,
    problem: &'static str,
}

/// The longest duration Go can represent (`2562047h47m16.854775807s`, the largest `int64` of nanoseconds):
/// Velero's TTLs cannot be longer, and neither can Cairn's.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// Parses Go's duration notation: one or more `<number><unit>` with units `h`, `m`, `s`, `ms`, `us`, `ns`
/// (numbers may have a fraction). Negative durations and durations past [`MAX_DURATION`] (about 292 years)
/// are refused, as Go refuses them.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = |problem| DurationError { text: text.to_owned(), problem };
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if trimmed.is_empty() {
        return Err(error("it is empty"));
    }
    if trimmed.starts_with('-') {
        return Err(error("it is negative"));
    }
    let mut rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(error("a number is missing"));
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| error("a number is malformed"))?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            "" => return Err(error("a unit is missing")),
            _ => return Err(error("the unit is unknown (use h, m, s, ms, us or ns)")),
        };
        rest = &rest[unit_len..];
        total += number * seconds;
        if !total.is_finite() || total > MAX_DURATION.as_secs_f64() {
            return Err(error("it is longer than the longest duration Go allows, 2562047h (about 292 years)"));
        }
    }
    Ok(Duration::from_secs_f64(total).min(MAX_DURATION))
}

/// When something started at `start` with a lifetime of `ttl` expires; saturates at the latest time
/// representable instead of overflowing.
pub fn expires_at(start: jiff::Timestamp, ttl: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(ttl)
        .ok()
        .and_then(|span| start.checked_add(span).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

/// Formats like Go's `Duration.String()` for whole seconds: `720h0m0s`, `1m30s`, `2s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("720h").unwrap(), Duration::from_secs(720 * 3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2562047h").unwrap(), Duration::from_secs(2562047 * 3600));
    }

    #[test]
    fn bad_durations_say_how_to_write_them() {
        let huge = format!("1{}h", "0".repeat(400));
        for bad in ["", "10", "5d", "-1h", "h", "1h30", "99999999h", "2562048h", huge.as_str()] {
            let message = parse_duration(bad).unwrap_err().to_string();
            assert!(message.contains("720h"), "{bad}: {message}");
        }
    }

    #[test]
    fn expiry_never_overflows() {
        let now = jiff::Timestamp::now();
        assert_eq!(expires_at(now, Duration::from_secs(60)), now + jiff::SignedDuration::from_secs(60));
        assert_eq!(expires_at(now, Duration::MAX), jiff::Timestamp::MAX);
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(format_duration(Duration::from_secs(720 * 3600)), "720h0m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
    }
}
