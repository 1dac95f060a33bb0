//! Kubernetes quantities (`100m`, `1.5`, `128Mi`, `1e3`), as resource requests, limits, capacity and
//! allocatable are written: their grammar checked in one place, and their value in base units (cores,
//! bytes) for sums and comparisons.

/// A quantity's value in its base unit (CPU in cores, memory and storage in bytes), or `None` when `text` is
/// not a quantity: an optionally signed decimal number, then a binary (`Ki`..`Ei`), decimal (`n`, `u`, `m`,
/// `k`, `M`..`E`) or exponent (`e3`, `E-2`) suffix, or none.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits_end = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits_end);
    if number.chars().filter(|&c| c == '.').count() > 1 || !number.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let binary = |power: i32| Some(1024f64.powi(power));
    let decimal = |power: i32| Some(10f64.powi(power));
    let scale = match suffix {
        "" => Some(1.0),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            decimal(digits.parse().ok()?)
        }
    }?;
    Some(sign * number * scale)
}

/// Whether `text` is a Kubernetes quantity ([`parse_quantity`]'s grammar).
pub fn is_quantity(text: &str) -> bool {
    parse_quantity(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_in_base_units() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("128Mi"), Some(134_217_728.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("+5k"), Some(5000.0));
        assert_eq!(parse_quantity("-1"), Some(-1.0));
    }

    #[test]
    fn what_is_not_a_quantity_is_refused() {
        for bad in ["", "m", "1.2.3", "12 Mi", "1mi", "1e", "1eX", "Gi", "one"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
