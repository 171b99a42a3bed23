//! HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms a
//! recipient must accept. Parsing is the `httpdate` crate's; this adapts it to bytes and makes
//! it as lenient as the specifications allow a recipient to be, and no more:
//!
//! - names in any case (`THU`, `AUG`, `gMT`): HTTP-date is case-sensitive, but RFC 9111 §4.2
//!   asks a cache to match it case-insensitively;
//! - a weekday that does not fit the date (`Thu Aug  8 02:01:18 2050`, a Monday) is ignored:
//!   it is redundant with the date, and §5.6.7 encourages robust parsing of timestamps. The
//!   name must still be a weekday.
//!
//! Everything else the grammar forbids stays invalid (a missing comma, two-digit years in
//! IMF-fixdate, `UTC`, one-digit hours, extra spaces): those are not spelling variants of one
//! instant but guesses, and an invalid `Expires` means "already expired" (RFC 9111 §5.3).

use std::time::SystemTime;

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parse an HTTP-date; `None` when it is not one.
pub fn parse_http_date(v: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(v).ok()?.trim();
    httpdate::parse_http_date(s).ok().or_else(|| lenient(s))
}

/// The same date with its names spelled as the grammar spells them, and with each weekday in
/// turn when the written one does not fit.
fn lenient(s: &str) -> Option<SystemTime> {
    if !s.is_ascii() {
        return None;
    }
    let mut words: Vec<String> = Vec::new();
    let mut rest = s;
    // Split into runs of letters and runs of anything else, respelling the letters.
    while !rest.is_empty() {
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let n = if letters > 0 {
            letters
        } else {
            rest.bytes()
                .take_while(|b| !b.is_ascii_alphabetic())
                .count()
        };
        let (word, tail) = rest.split_at(n);
        words.push(if letters > 0 {
            respell(word)
        } else {
            word.to_string()
        });
        rest = tail;
    }
    let canonical = words.concat();
    if let Ok(t) = httpdate::parse_http_date(&canonical) {
        return Some(t);
    }
    let first = words.first()?;
    let names = if SHORT_DAYS.contains(&first.as_str()) {
        &SHORT_DAYS[..]
    } else if LONG_DAYS.contains(&first.as_str()) {
        &LONG_DAYS[..]
    } else {
        return None;
    };
    let after = &canonical[first.len()..];
    names
        .iter()
        .find_map(|day| httpdate::parse_http_date(&format!("{day}{after}")).ok())
}

/// A day or month name or `GMT` in the grammar's spelling; other words as they were.
fn respell(word: &str) -> String {
    let known = SHORT_DAYS.iter().chain(&LONG_DAYS).chain(&MONTHS);
    if let Some(name) = known.into_iter().find(|n| n.eq_ignore_ascii_case(word)) {
        return (*name).to_string();
    }
    if word.eq_ignore_ascii_case("GMT") {
        return "GMT".to_string();
    }
    word.to_string()
}

/// Format as IMF-fixdate.
pub fn fmt_http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_formats_parse_to_the_same_instant() {
        let a = parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(a.is_some());
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), a);
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), a);
        assert_eq!(parse_http_date(b"0"), None);
        assert_eq!(parse_http_date(b"\xff"), None);
    }

    /// RFC 9111 §4.2 (case) and RFC 9110 §5.6.7 (robustness): the spelling variants the public
    /// suite's `freshness-expires-*` cases send, accepted or not.
    #[test]
    fn names_in_any_case_and_a_wrong_weekday_are_accepted_and_nothing_else() {
        let want = parse_http_date(b"Thu, 18 Aug 2050 02:01:18 GMT");
        assert!(want.is_some());
        for ok in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gMT",
            "thu, 18 aug 2050 02:01:18 gmt",
            "Mon, 18 Aug 2050 02:01:18 GMT",
            "Thursday, 18-Aug-50 02:01:18 GMT",
            "MONDAY, 18-aug-50 02:01:18 GMT",
            "Sat Aug 18 02:01:18 2050",
        ] {
            assert_eq!(parse_http_date(ok.as_bytes()), want, "{ok}");
        }
        // 8 Aug 2050 is a Monday; the suite's asctime case says Thursday.
        assert_eq!(
            parse_http_date(b"Thu Aug  8 02:01:18 2050"),
            parse_http_date(b"Mon, 08 Aug 2050 02:01:18 GMT")
        );
        for bad in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "Xyz, 18 Aug 2050 02:01:18 GMT",
            "Thu, 31 Feb 2050 02:01:18 GMT",
            "Thu, 18 Äug 2050 02:01:18 GMT",
        ] {
            assert_eq!(parse_http_date(bad.as_bytes()), None, "{bad}");
        }
    }
}
