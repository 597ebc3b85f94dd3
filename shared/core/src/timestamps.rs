//! Hand-written ISO-8601 parsing: the cleaner's hottest path, and the place
//! where engines differ most in leniency, so the grammar is spelled out here.
//!
//! Accepted: `YYYY-MM-DD`, `T` or one space, `hh:mm:ss`, optional `.` and 1–6
//! fraction digits, then `Z` or `±hh:mm` (hours 00–14). Without a zone the
//! value is accepted only when the column allows naive timestamps (read as
//! UTC). Everything else — `+0800`, lowercase `z`, hour 24, second 60, 7+
//! fraction digits, impossible calendar dates — is refused rather than
//! guessed, because a silently shifted instant corrupts every downstream
//! window.

use crate::config::NaiveTimestamps;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u32;
    }
    Some(v)
}

/// Two ASCII digits as a number.
#[inline(always)]
fn two_digits(tens: u8, ones: u8) -> Option<u32> {
    let (t, o) = (tens.wrapping_sub(b'0'), ones.wrapping_sub(b'0'));
    if t > 9 || o > 9 {
        return None;
    }
    Some(t as u32 * 10 + o as u32)
}

/// Days since the epoch of a calendar date, if it is a real one.
#[inline]
fn civil_days(year: u32, month: u32, day: u32) -> Option<i64> {
    let year = year as i64;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Days since the epoch of a `YYYY-MM-DD`, if it is a real date.
#[inline]
fn date_days(b: &[u8; 10]) -> Option<i64> {
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(b[0], b[1])? * 100 + two_digits(b[2], b[3])?;
    civil_days(year, two_digits(b[5], b[6])?, two_digits(b[8], b[9])?)
}

/// `YYYY-MM-DD` → days since the epoch.
pub fn parse_date_days(b: &[u8]) -> Option<i32> {
    i32::try_from(date_days(b.try_into().ok()?)?).ok()
}

/// Eight bytes as digit values, a byte per lane (lane i is byte i), or
/// `None` when a lane in `digit_lanes` (0xFF there) is not an ASCII digit.
/// The other lanes are the caller's separators, checked on their own.
///
/// XOR maps '0'..='9' to 0..=9 and every other byte outside 0..=9. A lane
/// is a digit when its high nibble is clear and adding 6 does not reach
/// 0x10. The addition can carry out of a lane only from a lane already
/// refused (or a separator the caller refuses), and a carry only adds, so
/// it never lets a non-digit through.
#[inline(always)]
fn digit_lanes(word: u64, digit_lanes: u64) -> Option<u64> {
    let values = word ^ 0x3030_3030_3030_3030;
    let high = values & 0xF0F0_F0F0_F0F0_F0F0;
    let over_nine = values.wrapping_add(0x0606_0606_0606_0606) & 0x1010_1010_1010_1010;
    ((high | over_nine) & digit_lanes == 0).then_some(values)
}

#[inline(always)]
fn lane(values: u64, i: u32) -> u32 {
    ((values >> (8 * i)) & 0xFF) as u32
}

/// An ISO-8601 timestamp → microseconds since the epoch, UTC.
pub fn parse_timestamp_micros(b: &[u8], naive: NaiveTimestamps) -> Option<i64> {
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    if head[4] != b'-'
        || head[7] != b'-'
        || (head[10] != b'T' && head[10] != b' ')
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    // The fourteen digits of `YYYY-MM-DDThh:mm:ss` checked and read eight
    // bytes at a time: this runs once per row of every timestamp column.
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let date = digit_lanes(word(0), 0x00FF_FF00_FFFF_FFFF)?; // YYYY-MM-
    let clock = digit_lanes(word(8), 0xFFFF_00FF_FF00_FFFF)?; // DDThh:mm
    let seconds = digit_lanes(word(11), 0xFFFF_0000_0000_0000)?; // hh:mm:ss
    let year = lane(date, 0) * 1000 + lane(date, 1) * 100 + lane(date, 2) * 10 + lane(date, 3);
    let month = lane(date, 5) * 10 + lane(date, 6);
    let day = lane(clock, 0) * 10 + lane(clock, 1);
    let hour = lane(clock, 3) * 10 + lane(clock, 4);
    let minute = lane(clock, 6) * 10 + lane(clock, 7);
    let second = lane(seconds, 6) * 10 + lane(seconds, 7);
    let days = civil_days(year, month, day)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut pos = 19;
    let mut micros = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let n = pos - start;
        if n == 0 || n > 6 {
            return None;
        }
        micros = digits(&b[start..pos])? as i64 * 10i64.pow((6 - n) as u32);
    }
    let offset_seconds: i64 = match &b[pos..] {
        [] => match naive {
            NaiveTimestamps::Reject => return None,
            NaiveTimestamps::AssumeUtc => 0,
        },
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 14 || om > 59 {
                return None;
            }
            let s = (oh * 3600 + om * 60) as i64;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let local_seconds =
        days * SECONDS_PER_DAY + hour as i64 * 3600 + minute as i64 * 60 + second as i64;
    Some((local_seconds - offset_seconds) * MICROS_PER_SECOND + micros)
}

/// The UTC calendar day of an instant.
pub fn utc_day_of_micros(micros: i64) -> i32 {
    micros.div_euclid(SECONDS_PER_DAY * MICROS_PER_SECOND) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    fn ts(s: &str) -> Option<String> {
        parse_timestamp_micros(s.as_bytes(), NaiveTimestamps::Reject).map(|us| {
            DateTime::from_timestamp_micros(us)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        })
    }

    #[test]
    fn civil_days_match_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for (y, m, d) in [
            (1970, 1, 1),
            (2024, 2, 29),
            (1900, 3, 1),
            (2000, 12, 31),
            (1969, 12, 31),
            (1, 1, 1),
        ] {
            let want = (NaiveDate::from_ymd_opt(y, m, d).unwrap() - epoch).num_days();
            assert_eq!(days_from_civil(y as i64, m, d), want, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn offsets_normalise_to_utc() {
        assert_eq!(
            ts("2024-02-29T23:30:00-01:00").unwrap(),
            "2024-03-01T00:30:00.000000Z"
        );
        assert_eq!(
            ts("2025-06-01T00:30:00+09:00").unwrap(),
            "2025-05-31T15:30:00.000000Z"
        );
        assert_eq!(
            ts("2025-06-01T10:00:00.123456-03:30").unwrap(),
            "2025-06-01T13:30:00.123456Z"
        );
        assert_eq!(
            ts("2025-06-04T11:00:00.5Z").unwrap(),
            "2025-06-04T11:00:00.500000Z"
        );
        assert_eq!(
            ts("2025-06-01 20:00:00+08:00").unwrap(),
            "2025-06-01T12:00:00.000000Z"
        );
        assert_eq!(
            ts("2025-06-01T10:00:00+14:00").unwrap(),
            "2025-05-31T20:00:00.000000Z"
        );
    }

    #[test]
    fn refuses_what_the_grammar_refuses() {
        for bad in [
            "2025-06-04T12:00:00",
            "2025-06-30T23:59:60Z",
            "2025-06-30T24:00:00Z",
            "2025-02-29T10:00:00Z",
            "2025-04-31 10:00:00+02:00",
            "2025-06-01T10:00:00.1234567Z",
            "2025-06-01T10:00:00+0800",
            "2025-06-01T10:00:00z",
            "2025-06-01T10:00Z",
            "2025/12/03T10:00:00Z",
            "1733200000",
            "N/A",
            "2025-06-01T10:00:00.Z",
            "2025-06-01T10:00:00+15:00",
            "2025-06-01t10:00:00Z",
            "2025-06-01T10:00:00Z ",
            "2025-13-01T10:00:00Z",
            "2025-06-01T10:00:00+05:60",
        ] {
            assert_eq!(ts(bad), None, "{bad}");
        }
    }

    #[test]
    fn agrees_with_chrono_and_refuses_a_non_digit_anywhere() {
        let offsets = ["Z", "+05:45", "-01:00", "+14:00"];
        let fractions = ["", ".5", ".123456", ".000001"];
        // Every 1,009,733 s (11.7 days) across 1901-2099: each month, day
        // of month, hour, minute and second comes up.
        let mut t = -2_177_452_800i64;
        let mut n = 0usize;
        while t < 4_102_444_800 {
            let utc = chrono::DateTime::from_timestamp(t, 0).unwrap().naive_utc();
            let text = format!(
                "{}{}{}",
                utc.format("%Y-%m-%dT%H:%M:%S"),
                fractions[n % 4],
                offsets[n / 4 % 4]
            );
            let want = chrono::DateTime::parse_from_rfc3339(&text)
                .unwrap()
                .timestamp_micros();
            assert_eq!(
                parse_timestamp_micros(text.as_bytes(), NaiveTimestamps::Reject),
                Some(want),
                "{text}"
            );
            let refused = |at: usize, bad: u8| {
                let mut broken = text.clone().into_bytes();
                broken[at] = bad;
                assert_eq!(
                    parse_timestamp_micros(&broken, NaiveTimestamps::Reject),
                    None,
                    "{}",
                    String::from_utf8_lossy(&broken)
                );
            };
            if n.is_multiple_of(97) {
                for at in [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] {
                    // ':' and ';' sit just past '9'; '?' keeps the high
                    // nibble of a digit; 0xFA.. would carry out of a lane.
                    for bad in [b'/', b':', b';', b'?', b'a', b' ', 0xC3, 0xFA, 0xFF] {
                        refused(at, bad);
                    }
                }
            }
            if n.is_multiple_of(89) {
                for at in [4, 7, 10, 13, 16] {
                    for bad in [b'0', b'9', b'-', b'/', 0xFA, 0xFF] {
                        if text.as_bytes()[at] != bad {
                            refused(at, bad);
                        }
                    }
                }
            }
            t += 1_009_733;
            n += 1;
        }
    }

    #[test]
    fn naive_is_utc_only_when_allowed() {
        assert_eq!(
            parse_timestamp_micros(b"1970-01-01 00:00:01", NaiveTimestamps::AssumeUtc),
            Some(1_000_000)
        );
        assert_eq!(
            parse_timestamp_micros(b"1970-01-01 00:00:01", NaiveTimestamps::Reject),
            None
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date_days(b"1970-01-02"), Some(1));
        assert_eq!(parse_date_days(b"2025-02-29"), None);
        assert_eq!(parse_date_days(b"2025-2-28"), None);
        assert_eq!(utc_day_of_micros(-1), -1);
    }
}
