//! A rate (so many requests per period) and the rate-string grammar users know from the
//! `limits` library: `"100/minute"`, `"100 per minute"`, `"5/2 seconds"`, several joined by
//! `;` or `,`.

use std::fmt;

pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// `limit` requests per `period_ns` nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub limit: u64,
    pub period_ns: u64,
}

/// Why a rate string was refused; `Display` quotes the whole string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateParseError {
    pub input: String,
    pub reason: String,
}

impl fmt::Display for RateParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rate string {:?}: {} (expected e.g. \"100/minute\", \"100 per minute\", \
             \"5/2 seconds\" or \"10/second; 1000/hour\")",
            self.input, self.reason
        )
    }
}

impl std::error::Error for RateParseError {}

const UNITS: [(&str, u64); 6] = [
    ("second", 1),
    ("minute", 60),
    ("hour", 3_600),
    ("day", 86_400),
    ("month", 30 * 86_400),
    ("year", 365 * 86_400),
];

/// Parses one or more rates joined by `;` or `,`.
pub fn parse_rates(input: &str) -> Result<Vec<Rate>, RateParseError> {
    let fail = |reason: String| RateParseError {
        input: input.to_string(),
        reason,
    };
    let mut rates = Vec::new();
    for part in input.split([';', ',']) {
        let part = part.trim();
        if part.is_empty() {
            return Err(fail("empty rate".into()));
        }
        rates.push(parse_one(part).map_err(fail)?);
    }
    Ok(rates)
}

fn parse_one(part: &str) -> Result<Rate, String> {
    let lower = part.to_ascii_lowercase();
    let (count, period) = if let Some((count, period)) = lower.split_once('/') {
        (count, period)
    } else if let Some((count, period)) = lower.split_once(" per ") {
        (count, period)
    } else {
        return Err(format!("{part:?} has no \"/\" or \"per\""));
    };
    let limit = parse_count(count.trim(), "count", part)?;
    let period = period.trim();
    let split = period
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(period.len());
    let (multiplier, unit) = period.split_at(split);
    let multiplier = if multiplier.is_empty() {
        1
    } else {
        parse_count(multiplier, "period multiplier", part)?
    };
    let unit = unit.trim();
    let singular = unit.strip_suffix('s').unwrap_or(unit);
    let seconds = UNITS
        .iter()
        .find(|(name, _)| *name == singular)
        .map(|(_, seconds)| *seconds)
        .ok_or_else(|| {
            format!("unknown unit {unit:?} (use second, minute, hour, day, month or year)")
        })?;
    let period_ns = multiplier
        .checked_mul(seconds)
        .and_then(|s| s.checked_mul(NANOS_PER_SECOND))
        .ok_or_else(|| format!("period of {part:?} is too long"))?;
    Ok(Rate { limit, period_ns })
}

fn parse_count(text: &str, what: &str, part: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {text:?} of {part:?} is not a whole number"));
    }
    match text.parse::<u64>() {
        Ok(0) => Err(format!("{what} of {part:?} must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{what} of {part:?} is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(limit: u64, seconds: u64) -> Rate {
        Rate {
            limit,
            period_ns: seconds * NANOS_PER_SECOND,
        }
    }

    #[test]
    fn parses_the_known_forms() {
        assert_eq!(parse_rates("100/minute").unwrap(), vec![rate(100, 60)]);
        assert_eq!(parse_rates("100 per minute").unwrap(), vec![rate(100, 60)]);
        assert_eq!(parse_rates("5/2 seconds").unwrap(), vec![rate(5, 2)]);
        assert_eq!(parse_rates("5 / 2seconds").unwrap(), vec![rate(5, 2)]);
        assert_eq!(parse_rates("1/DAY").unwrap(), vec![rate(1, 86_400)]);
        assert_eq!(
            parse_rates("10/second; 1000/hour, 5000 per 2 days").unwrap(),
            vec![rate(10, 1), rate(1000, 3600), rate(5000, 2 * 86_400)]
        );
        assert_eq!(parse_rates("3/month").unwrap(), vec![rate(3, 30 * 86_400)]);
        assert_eq!(parse_rates("3/year").unwrap(), vec![rate(3, 365 * 86_400)]);
    }

    #[test]
    fn refuses_malformed_strings_quoting_them() {
        for bad in [
            "",
            "100",
            "x/minute",
            "0/minute",
            "-1/minute",
            "1.5/minute",
            "10/fortnight",
            "10/0 seconds",
            "10/second;",
            "10 per",
            "99999999999999999999999/second",
            "1/99999999999999999 years",
        ] {
            let err = parse_rates(bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{bad:?} -> {err}"
            );
        }
    }
}
