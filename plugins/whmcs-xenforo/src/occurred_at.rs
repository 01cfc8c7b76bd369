//! `occurred_at`: the RFC 3339 time the PHP hook stamps on each event, as the ordering
//! check compares it.
//!
//! Hand-written on purpose, not `jiff` or `time`: its strict behaviour is pinned by
//! `occurred_at_is_rfc_3339` (a fraction of any length is accepted and cut to nanoseconds,
//! so 10 digits parse; an offset without its colon, `+0200`, is refused). A date crate
//! settles those edge cases its own way, so swapping one in would change what the ordering
//! check accepts, and it would add weight to the wasm build for the one format read here.

/// An RFC 3339 time (`2026-01-02T03:04:05.123456Z`, `2026-01-02T05:04:05+02:00`) as it
/// was sent, and as UTC seconds and nanoseconds for comparing.
#[derive(Debug, Clone)]
pub(crate) struct OccurredAt {
    pub(crate) text: String,
    /// Seconds since 1970-01-01T00:00:00Z and the fraction: compared as a pair.
    pub(crate) instant: (i64, u32),
}

impl OccurredAt {
    /// `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<OccurredAt> {
        let b = text.as_bytes();
        let digits = |from: usize, len: usize| -> Option<i64> {
            let part = b.get(from..from + len)?;
            part.iter()
                .all(u8::is_ascii_digit)
                .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
        let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
        if b.get(4) != Some(&b'-')
            || b.get(7) != Some(&b'-')
            || !matches!(b.get(10), Some(b'T' | b't' | b' '))
            || b.get(13) != Some(&b':')
            || b.get(16) != Some(&b':')
        {
            return None;
        }
        if !(1..=12).contains(&month)
            || !(1..=days_in_month(year, month)).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut at = 19;
        let mut nanos = 0u32;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return None;
            }
            // Nanosecond precision; further digits cannot change the order of real events.
            let fraction = &text[start..at.min(start + 9)];
            nanos = fraction.parse::<u32>().ok()? * 10u32.pow(9 - fraction.len() as u32);
        }
        let offset = match b.get(at..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let minutes = h * 60 + m;
                if *sign == b'-' { -minutes } else { minutes }
            }
            _ => return None,
        };
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
                - offset * 60;
        Some(OccurredAt {
            text: text.to_owned(),
            instant: (seconds, nanos),
        })
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (year 0000–9999).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{T1, T2, T3};

    #[test]
    fn occurred_at_is_rfc_3339() {
        let at = |text: &str| OccurredAt::parse(text).map(|t| t.instant);
        assert_eq!(at("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(at("2026-01-02T03:04:05Z"), Some((1_767_323_045, 0)));
        assert_eq!(
            at("2026-01-02t03:04:05.5z"),
            Some((1_767_323_045, 500_000_000))
        );
        assert_eq!(
            at("2026-01-02 03:04:05.123456Z"),
            Some((1_767_323_045, 123_456_000))
        );
        assert_eq!(
            at("2026-01-02T03:04:05.1234567891Z"),
            Some((1_767_323_045, 123_456_789))
        );
        assert_eq!(at("2026-01-02T05:34:05+02:30"), at("2026-01-02T03:04:05Z"));
        assert_eq!(at("2026-01-01T22:04:05-05:00"), at("2026-01-02T03:04:05Z"));
        assert_eq!(at("2024-02-29T00:00:00Z"), Some((1_709_164_800, 0)));
        assert!(at(T1) < at(T2) && at(T2) < at(T3));
        assert!(at("2026-01-02T03:04:05.9Z") < at("2026-01-02T03:04:06Z"));
        for bad in [
            "",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05+0200",
            "2026-01-02T03:04:05+2:00",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05Zjunk",
            "2026-13-02T03:04:05Z",
            "2025-02-29T03:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:60:00Z",
            "2026/01/02T03:04:05Z",
            "+026-01-02T03:04:05Z",
            "2026-01-02T03:04:05+24:00",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }
}
