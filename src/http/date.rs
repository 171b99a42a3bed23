//! HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms a
//! recipient must accept. Parsing is the `httpdate` crate's; this only adapts it to bytes.

use std::time::SystemTime;

/// Parse an HTTP-date; `None` when it is not one.
pub fn parse_http_date(v: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(v).ok()?.trim();
    httpdate::parse_http_date(s).ok()
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
}
