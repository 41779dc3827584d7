//! A rate (so many requests per period) and the rate strings users write, in one grammar that
//! takes both the `limits` library's notation (slowapi, flask-limiter) and django-ratelimit's
//! short form:
//!
//! ```text
//! rates = rate { ("," | ";" | "|") rate }
//! rate  = count ("/" | "per") [multiplier] unit      limits: "100/minute", "5 per 2 hours"
//!       | count "/" [multiplier] short                django-ratelimit: "5/m", "5/10m"
//! unit  = second | minute | hour | day | month | year, singular or plural, in any case
//! short = s | m | h | d
//! ```
//!
//! `count` and `multiplier` are ASCII digits. In `limits`' form, whitespace (Unicode) may stand
//! between any two tokens, and `per` and the unit are case-insensitive. The short form is
//! taken only as django-ratelimit writes it: lowercase (`"5/M"` is refused: a month? django-
//! ratelimit reads it as 5 per second), no spaces inside, after a `/` (`"5 per m"` is refused),
//! so a string that neither library takes is refused here too. Whitespace around each rate is
//! always allowed. A month is 30 days and a year 360 (12 such months), as in `limits`, so a
//! string means the same window here as there.
//!
//! Refused, with an error quoting the whole string: an empty rate (`"10/second;"`), a count or
//! multiplier of 0 (`limits` takes a 0 count as "nothing passes" and a 0 multiplier as 1; here
//! both are mistakes), signs, fractions, units spelled otherwise (`"min"`, `"ms"`, `"mo"`,
//! `"ss"`), a count above [`MAX_COUNT`] and a period above [`MAX_NS`]. Unlike django-ratelimit,
//! the unit is never implied (`"5/"` and `"5/10"` are refused) and is matched whole (`"5/mx"` is
//! refused, not read as `"5/m"`).

use std::fmt;

use crate::clock::{MAX_NS, MAX_NS_TEXT};
use crate::config::MAX_COUNT;

/// Nanoseconds in a second.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// `limit` requests per `period_ns` nanoseconds: a window of that length for the window
/// algorithms, a refill of `limit` tokens over that time for the bucket ones. Usually read from
/// a string by [`parse_rates`]; [`LimiterConfig::validate`](crate::LimiterConfig::validate)
/// checks the bounds (a limit of 1 to `u32::MAX`, a period of 1 ns to 2**62 ns).
///
/// ```
/// use rust_py_rate_limit::Rate;
///
/// let rate = Rate { limit: 100, period_ns: 60 * 1_000_000_000 };
/// assert_eq!(rust_py_rate_limit::parse_rates("100/minute")?, vec![rate]);
/// # Ok::<(), rust_py_rate_limit::RateParseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests (of cost 1) admitted per period.
    pub limit: u64,
    /// The period, in nanoseconds.
    pub period_ns: u64,
}

/// Why a rate string was refused; `Display` quotes the whole string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateParseError {
    /// The whole string given to [`parse_rates`].
    pub input: String,
    /// What is wrong with it, quoting the rate at fault.
    pub reason: String,
}

impl fmt::Display for RateParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rate string {:?}: {} (expected e.g. \"100/minute\", \"100 per minute\", \
             \"5/2 seconds\", \"5/m\", \"5/10m\" or \"10/second; 1000/hour\")",
            self.input, self.reason
        )
    }
}

impl std::error::Error for RateParseError {}

/// The characters that join several rates.
const SEPARATORS: [char; 3] = [',', ';', '|'];

/// Each unit: its name (also taken with a final `s`), its short form (django-ratelimit's), and
/// its seconds.
const UNITS: [(&str, Option<&str>, u64); 6] = [
    ("second", Some("s"), 1),
    ("minute", Some("m"), 60),
    ("hour", Some("h"), 3_600),
    ("day", Some("d"), 86_400),
    ("month", None, 30 * 86_400),
    ("year", None, 12 * 30 * 86_400),
];

const UNIT_NAMES: &str = "second, minute, hour, day, month or year, or their plurals, \
                          or s, m, h or d";

/// Parses one or more rates joined by `,`, `;` or `|`, in the grammar of this module's
/// documentation (`"100/minute"`, `"5 per 2 hours"`, `"5/m"`, `"10/second; 1000/hour"`).
///
/// ```
/// use rust_py_rate_limit::{parse_rates, Rate};
///
/// let rates = parse_rates("10/second; 1000 per hour")?;
/// assert_eq!(rates, [
///     Rate { limit: 10, period_ns: 1_000_000_000 },
///     Rate { limit: 1000, period_ns: 3_600_000_000_000 },
/// ]);
/// assert_eq!(parse_rates("5/10m")?, [Rate { limit: 5, period_ns: 600_000_000_000 }]);
///
/// // Refused, with an error quoting the string and naming the fault.
/// let error = parse_rates("10/fortnight").unwrap_err();
/// let expected = r#"invalid rate string "10/fortnight": unknown unit "fortnight""#;
/// assert!(error.to_string().starts_with(expected));
/// assert!(parse_rates("0/second").is_err());
/// assert!(parse_rates("10/second;").is_err());
/// # Ok::<(), rust_py_rate_limit::RateParseError>(())
/// ```
pub fn parse_rates(input: &str) -> Result<Vec<Rate>, RateParseError> {
    let fail = |reason: String| RateParseError {
        input: input.to_string(),
        reason,
    };
    let mut rates = Vec::new();
    for part in input.split(SEPARATORS) {
        let part = part.trim();
        if part.is_empty() {
            return Err(fail("empty rate".into()));
        }
        rates.push(parse_one(part).map_err(fail)?);
    }
    Ok(rates)
}

/// One `count ("/" | "per") [multiplier] unit`, already trimmed.
fn parse_one(part: &str) -> Result<Rate, String> {
    let (count, rest) = split_number(part);
    if count.is_empty() {
        return Err(format!("{part:?} does not start with a count"));
    }
    let limit = parse_count(count, "count", part, MAX_COUNT)?;
    let rest = rest.trim_start();
    let rest = if let Some(rest) = rest.strip_prefix('/') {
        rest
    } else if rest
        .get(..3)
        .is_some_and(|per| per.eq_ignore_ascii_case("per"))
    {
        &rest[3..]
    } else {
        return Err(format!("{part:?} has no \"/\" or \"per\" after its count"));
    };
    let (multiplier, unit) = split_number(rest.trim_start());
    let multiplier = if multiplier.is_empty() {
        1
    } else {
        parse_count(
            multiplier,
            "period multiplier",
            part,
            MAX_NS / NANOS_PER_SECOND,
        )?
    };
    let unit = unit.trim_start();
    if unit.is_empty() {
        return Err(format!("{part:?} has no unit (use {UNIT_NAMES})"));
    }
    let seconds = match unit_seconds(unit) {
        Some(seconds) => seconds,
        None => short_unit_seconds(unit, part)?
            .ok_or_else(|| format!("unknown unit {unit:?} in {part:?} (use {UNIT_NAMES})"))?,
    };
    let period_ns = multiplier
        .checked_mul(seconds)
        .and_then(|s| s.checked_mul(NANOS_PER_SECOND))
        .filter(|&ns| ns <= MAX_NS)
        .ok_or_else(|| format!("period of {part:?} is longer than {MAX_NS_TEXT}"))?;
    Ok(Rate { limit, period_ns })
}

/// Splits off what stands where a number belongs: everything up to whitespace, `/` or a
/// letter (so `"1.5"` and `"-1"` are seen whole, and refused as such).
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| c.is_whitespace() || c == '/' || c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn parse_count(text: &str, what: &str, part: &str, max: u64) -> Result<u64, String> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        let negative = text
            .strip_prefix('-')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
        if negative {
            return Err(format!(
                "{what} {text} of {part:?} is negative: it must be at least 1"
            ));
        }
        return Err(format!("{what} {text:?} of {part:?} is not a whole number"));
    }
    match text.parse::<u64>() {
        Ok(0) => Err(format!("{what} of {part:?} must be at least 1")),
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{what} of {part:?} is too large (at most {max})")),
    }
}

/// Seconds in `unit` (ASCII letters, any case), a unit's name, singular or plural.
fn unit_seconds(unit: &str) -> Option<u64> {
    if !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let unit = unit.to_ascii_lowercase();
    let singular = unit.strip_suffix('s').unwrap_or(&unit);
    UNITS
        .iter()
        .find(|(name, _, _)| *name == singular)
        .map(|(_, _, seconds)| *seconds)
}

/// Seconds in `unit` if it is a short form: only as django-ratelimit writes it, lowercase and
/// right after the `/` or the multiplier, in a rate without spaces (`"5/m"`, `"5/10m"`), so
/// that a string neither library takes (`"5 per m"`, `"5/M"`) is refused here too.
fn short_unit_seconds(unit: &str, part: &str) -> Result<Option<u64>, String> {
    let lower = unit.to_ascii_lowercase();
    let Some((_, _, seconds)) = UNITS
        .iter()
        .find(|(_, short, _)| *short == Some(lower.as_str()))
    else {
        return Ok(None);
    };
    if unit != lower {
        return Err(format!(
            "the short unit {unit:?} of {part:?} is lowercase: s, m (minute), h or d"
        ));
    }
    if part.contains(|c: char| c.is_whitespace()) || !part.contains('/') {
        return Err(format!(
            "the short unit {unit:?} of {part:?} is written as in \"5/m\" or \"5/10m\": \
             after a \"/\", without spaces"
        ));
    }
    Ok(Some(*seconds))
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

    fn one(text: &str) -> (u64, u64) {
        match parse_rates(text).unwrap().as_slice() {
            [r] => (r.limit, r.period_ns / NANOS_PER_SECOND),
            more => panic!("{text:?} -> {more:?}"),
        }
    }

    #[test]
    fn parses_the_limits_forms() {
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
        // A year is 12 months of 30 days, as in `limits`.
        assert_eq!(parse_rates("3/years").unwrap(), vec![rate(3, 360 * 86_400)]);
    }

    #[test]
    fn splits_on_the_pipe_too() {
        assert_eq!(
            parse_rates("10/day|5/hour").unwrap(),
            vec![rate(10, 86_400), rate(5, 3_600)]
        );
        assert_eq!(
            parse_rates(" 1/second | 2/minute;3/hour , 4/day ").unwrap(),
            vec![rate(1, 1), rate(2, 60), rate(3, 3_600), rate(4, 86_400)]
        );
    }

    #[test]
    fn takes_per_in_any_case_and_spacing() {
        assert_eq!(one("10 PER Minute"), (10, 60));
        assert_eq!(one("10per minute"), (10, 60));
        assert_eq!(one("10 perminute"), (10, 60));
        assert_eq!(one("10per2minutes"), (10, 120));
        assert_eq!(one("\t10\u{a0}/\u{3000}3 hours\n"), (10, 10_800));
        assert_eq!(one("007/002 seconds"), (7, 2));
    }

    #[test]
    fn parses_the_django_short_form() {
        assert_eq!(one("10/s"), (10, 1));
        assert_eq!(one("5/m"), (5, 60));
        assert_eq!(one("100/h"), (100, 3_600));
        assert_eq!(one("1/d"), (1, 86_400));
        assert_eq!(one("5/10m"), (5, 600));
        assert_eq!(one(" 5/10m\t"), (5, 600));
        assert_eq!(
            parse_rates("5/m|100/h; 1/day").unwrap(),
            vec![rate(5, 60), rate(100, 3_600), rate(1, 86_400)]
        );
    }

    #[test]
    fn takes_the_largest_count_and_period() {
        assert_eq!(one("4294967295/second"), (4_294_967_295, 1));
        let longest = MAX_NS / NANOS_PER_SECOND;
        assert_eq!(one(&format!("1/{longest} seconds")), (1, longest));
    }

    #[test]
    fn refuses_malformed_strings_quoting_them() {
        for (bad, why) in [
            ("", "empty rate"),
            ("100", "has no \"/\" or \"per\""),
            ("x/minute", "does not start with a count"),
            ("/minute", "does not start with a count"),
            ("0/minute", "count of \"0/minute\" must be at least 1"),
            ("-1/minute", "count -1 of \"-1/minute\" is negative"),
            (
                "1.5/minute",
                "count \"1.5\" of \"1.5/minute\" is not a whole number",
            ),
            ("5/1.5 minutes", "period multiplier \"1.5\""),
            ("10/fortnight", "unknown unit \"fortnight\""),
            (
                "10/0 seconds",
                "period multiplier of \"10/0 seconds\" must be at least 1",
            ),
            ("10/00m", "must be at least 1"),
            ("10/second;", "empty rate"),
            ("10/second||1/hour", "empty rate"),
            ("|10/second", "empty rate"),
            ("10 per", "has no unit"),
            ("10/", "has no unit"),
            ("10/10", "has no unit"),
            ("10 p minute", "has no \"/\" or \"per\""),
            ("10 / per minute", "unknown unit \"per minute\""),
            ("5/ms", "unknown unit \"ms\""),
            ("5/M", "the short unit \"M\" of \"5/M\" is lowercase"),
            ("5/10 m", "is written as in \"5/m\" or \"5/10m\""),
            ("5 / m", "without spaces"),
            ("5 per m", "without spaces"),
            ("5perm", "after a \"/\""),
            ("5/ss", "unknown unit \"ss\""),
            ("5/min", "unknown unit \"min\""),
            ("5/mx", "unknown unit \"mx\""),
            ("5/m5", "unknown unit \"m5\""),
            ("5/minute!", "unknown unit"),
            ("5/ m inute", "unknown unit \"m inute\""),
            ("5/sécond", "unknown unit"),
            ("5/1second:", "unknown unit"),
            (
                "99999999999999999999999/second",
                "is too large (at most 4294967295)",
            ),
            ("4294967296/second", "is too large"),
            ("1/99999999999999999 years", "is too large"),
            ("1/4611686019 seconds", "is too large"),
            ("1/149 years", "longer than 2**62 nanoseconds"),
        ] {
            let err = parse_rates(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?} -> {err}");
            assert!(err.contains(why), "{bad:?} -> {err}");
            assert!(err.contains("\"5/m\""), "{bad:?} -> {err}");
        }
    }
}
