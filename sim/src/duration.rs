//! Durations as people write them: `2.5s`, `300ms`, `150us`, `2m`.

use serde::{Deserialize, Deserializer};

/// A duration in microseconds, parsed from text such as `2.5s` or `300ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub u64);

/// Parses `2.5s`, `300ms`, `150us` or `2m` into microseconds.
pub fn parse_micros(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "" => {
            return Err(format!(
                "{text:?} has no unit: write it as 2.5s, 300ms, 150us or 2m"
            ));
        }
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use us, ms, s or m"
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let invalid = || format!("{text:?} is not a duration such as 2.5s or 300ms");
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 6 {
        return Err(invalid());
    }
    // Integer arithmetic only: the same text gives the same microseconds everywhere.
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    let fraction_value: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| invalid())?
    };
    let fraction_scale = 10u64.pow(fraction.len() as u32);
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction_value * scale / fraction_scale))
        .ok_or_else(|| format!("{text:?} is too long"))
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Micros, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_micros(&text)
            .map(Micros)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_micros;

    #[test]
    fn durations_parse_with_units_and_fractions() {
        assert_eq!(parse_micros("2.5s"), Ok(2_500_000));
        assert_eq!(parse_micros("300ms"), Ok(300_000));
        assert_eq!(parse_micros("150us"), Ok(150));
        assert_eq!(parse_micros("2m"), Ok(120_000_000));
        assert_eq!(parse_micros("0.001s"), Ok(1_000));
        for bad in ["", "s", "5", "5 parsecs", "1.2.3s", "-1s", "1.0000001s"] {
            assert!(parse_micros(bad).is_err(), "{bad:?}");
        }
    }
}
