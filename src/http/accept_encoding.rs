//! `Accept-Encoding` (RFC 9110 §12.5.3) and the choice of the content coding a response is sent
//! in.
//!
//! ```text
//! Accept-Encoding = #( codings [ weight ] )
//! codings         = content-coding / "identity" / "*"
//! weight          = OWS ";" OWS "q=" qvalue
//! qvalue          = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
//! ```
//!
//! How etagate reads it, where the RFC leaves room:
//!
//! - Codings are case-insensitive; `x-gzip` is `gzip` (§8.4.1.3). Codings etagate does not
//!   produce (`deflate`, `compress`, ...) are read and ignored.
//! - A member whose coding is not a token is dropped. A member whose weight cannot be read
//!   (`gzip;q=2`, `br;q=0.5x`, `zstd;level=3`) counts as `q=0` for its coding: etagate never
//!   sends a coding the client said something unreadable about (nginx reads it the same way).
//!   A coding listed twice takes the lower weight, for the same reason.
//! - `*` gives its weight to every coding not listed, `identity` included (§12.5.3 rule 2).
//! - `identity` is acceptable unless `identity;q=0`, or `*;q=0` without an `identity` member.
//!   When it is acceptable only by that default, it ranks below every coding listed with a
//!   positive weight: `Accept-Encoding: gzip;q=0.5` asks for gzip.
//! - Parsing walks the bytes once and allocates nothing, whatever the field holds: hostile
//!   input costs time linear in its length, which the request header limit bounds.
//!
//! And the choice ([`choose`]): the acceptable coding with the highest weight wins; ties go to
//! the server's order of preference; `identity` is always available and comes last in a tie.

use super::cache_control::directives;
use super::coding::Coding;
use http::header::{HeaderMap, ACCEPT_ENCODING, CACHE_CONTROL};

/// A weight in thousandths, `0..=1000` (a qvalue has at most three decimals, §12.4.2).
pub type Weight = u16;

/// What a request's `Accept-Encoding` says about the codings etagate produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcceptEncoding {
    gzip: Option<Weight>,
    br: Option<Weight>,
    zstd: Option<Weight>,
    identity: Option<Weight>,
    star: Option<Weight>,
}

/// How acceptable a coding is, in the order [`choose`] ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acceptability {
    /// `q=0`, or not listed and not covered by `*`.
    No,
    /// `identity` when no member names it nor `*`: acceptable, below any listed coding.
    ByDefault,
    /// Listed (or covered by `*`) with this positive weight.
    Weighted(Weight),
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|&b| !is_ows(b)).map_or(start, |p| p + 1);
    &v[start..end.max(start)]
}

/// A qvalue, `None` when it does not follow the grammar.
fn qvalue(v: &[u8]) -> Option<Weight> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(p) => (&v[..p], Some(&v[p + 1..])),
        None => (v, None),
    };
    let whole: Weight = match int {
        b"0" => 0,
        b"1" => 1000,
        _ => return None,
    };
    let Some(frac) = frac else {
        return Some(whole);
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Weight::from(d - b'0'));
    }
    if whole == 1000 && thousandths != 0 {
        return None;
    }
    Some(whole + thousandths)
}

/// The weight after a coding: `None` when there are parameters but no readable single `q`.
fn weight(params: &[u8]) -> Option<Weight> {
    let params = trim_ows(params);
    if params.is_empty() {
        return Some(1000);
    }
    let rest = trim_ows(params.strip_prefix(b";")?);
    let (name, value) = rest.split_at(rest.iter().position(|&b| b == b'=')?);
    if !trim_ows(name).eq_ignore_ascii_case(b"q") {
        return None;
    }
    qvalue(trim_ows(&value[1..]))
}

fn lower(slot: &mut Option<Weight>, w: Weight) {
    *slot = Some(slot.map_or(w, |old| old.min(w)));
}

impl AcceptEncoding {
    /// Read a request's `Accept-Encoding`; `None` when the request has none.
    pub fn of(req: &HeaderMap) -> Option<AcceptEncoding> {
        let mut lines = req.get_all(ACCEPT_ENCODING).iter().peekable();
        lines.peek()?;
        Some(AcceptEncoding::parse(lines.map(|v| v.as_bytes())))
    }

    /// Parse the field lines of one `Accept-Encoding`. An empty field (or one with only empty
    /// or dropped members) leaves every coding unlisted: only `identity` is acceptable.
    pub fn parse<'a, I: IntoIterator<Item = &'a [u8]>>(lines: I) -> AcceptEncoding {
        let mut ae = AcceptEncoding::default();
        for line in lines {
            for member in line.split(|&b| b == b',') {
                let member = trim_ows(member);
                let end = member
                    .iter()
                    .position(|&b| b == b';' || is_ows(b))
                    .unwrap_or(member.len());
                let (coding, params) = member.split_at(end);
                if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                    continue;
                }
                let w = weight(params).unwrap_or(0);
                let slot = if coding == b"*" {
                    &mut ae.star
                } else {
                    match Coding::from_token(coding) {
                        Some(Coding::Gzip) => &mut ae.gzip,
                        Some(Coding::Br) => &mut ae.br,
                        Some(Coding::Zstd) => &mut ae.zstd,
                        Some(Coding::Identity) => &mut ae.identity,
                        None => continue,
                    }
                };
                lower(slot, w);
            }
        }
        ae
    }

    /// How acceptable `coding` is (§12.5.3's three rules, `*` included).
    pub fn acceptability(&self, coding: Coding) -> Acceptability {
        let listed = match coding {
            Coding::Gzip => self.gzip,
            Coding::Br => self.br,
            Coding::Zstd => self.zstd,
            Coding::Identity => self.identity,
        };
        match listed.or(self.star) {
            Some(0) => Acceptability::No,
            Some(w) => Acceptability::Weighted(w),
            None if coding == Coding::Identity => Acceptability::ByDefault,
            None => Acceptability::No,
        }
    }
}

/// The coding to send a response in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Send the representation in this coding (`Identity`: unencoded).
    Send(Coding),
    /// Nothing available is acceptable: the request refuses `identity` (`identity;q=0`, or
    /// `*;q=0` without `identity`) and every coding etagate has for the response.
    ///
    /// etagate then sends the identity representation ([`Choice::coding`]), as RFC 9110
    /// §12.5.3 says an origin server SHOULD when no available coding is acceptable, rather
    /// than a 406: clients list the codings they can decode, and a refused `identity` is in
    /// practice a client unaware that the response might not be compressible (RFC 7231 moved
    /// away from 406 here on purpose, httpwg/http-core#980). A 406 would also be a response a
    /// shared cache could hand to others.
    NotAcceptable,
}

impl Choice {
    /// The coding etagate sends: `Identity` for [`Choice::NotAcceptable`].
    pub fn coding(self) -> Coding {
        match self {
            Choice::Send(c) => c,
            Choice::NotAcceptable => Coding::Identity,
        }
    }
}

/// Whether a request asks intermediaries not to transform content (`Cache-Control:
/// no-transform`, RFC 9111 §5.2.1.6): such a request gets the identity representation.
pub fn forbids_transform(req: &HeaderMap) -> bool {
    directives(req.get_all(CACHE_CONTROL)).any(|d| d.is("no-transform"))
}

/// Choose the coding to send a response in, for this request.
///
/// `available` lists the codings etagate has (or may produce) for the response, in the
/// route's order of preference; `identity` is always available and, unless `available` names
/// it earlier, last. Requests that are answered in `identity` whatever they accept:
///
/// - without `Accept-Encoding`. §12.5.3 lets a server send any coding then, but says too that
///   this "does not imply that the user agent will be able to correctly process all
///   encodings": scripts, `curl` without `--compressed`, old clients. nginx, Apache and Caddy
///   do the same;
/// - with `Cache-Control: no-transform` ([`forbids_transform`]).
///
/// The choice depends on the request's headers and `available` only, never on the method, so
/// a HEAD gets exactly the coding (and hence the header fields) a GET would.
pub fn choose(req: &HeaderMap, available: &[Coding]) -> Choice {
    let Some(ae) = AcceptEncoding::of(req) else {
        return Choice::Send(Coding::Identity);
    };
    if forbids_transform(req) {
        return Choice::Send(Coding::Identity);
    }
    choose_from(&ae, available)
}

/// [`choose`] for an already parsed `Accept-Encoding`.
pub fn choose_from(ae: &AcceptEncoding, available: &[Coding]) -> Choice {
    let identity_listed = available.contains(&Coding::Identity);
    let candidates = available
        .iter()
        .copied()
        .chain((!identity_listed).then_some(Coding::Identity));
    let mut best: Option<(Acceptability, Coding)> = None;
    for c in candidates {
        let a = ae.acceptability(c);
        // strictly better only: an earlier candidate wins a tie
        if a > Acceptability::No && best.is_none_or(|(b, _)| a > b) {
            best = Some((a, c));
        }
    }
    match best {
        Some((_, c)) => Choice::Send(c),
        None => Choice::NotAcceptable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use Coding::*;

    fn req(ae: &[&str], cc: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in ae {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).expect("value"));
        }
        if let Some(cc) = cc {
            h.insert(CACHE_CONTROL, HeaderValue::from_str(cc).expect("value"));
        }
        h
    }

    const ALL: &[Coding] = &[Zstd, Br, Gzip];

    /// (what the client sends, what etagate has in its order of preference, what it sends)
    #[test]
    fn choice_table() {
        let na = Choice::NotAcceptable;
        let s = Choice::Send;
        let rows: Vec<(&[&str], &[Coding], Choice)> = vec![
            // RFC 9110 §12.5.3's examples
            (&["compress, gzip"], ALL, s(Gzip)),
            (&[""], ALL, s(Identity)),
            (&["*"], ALL, s(Zstd)),
            (&["compress;q=0.5, gzip;q=1.0"], ALL, s(Gzip)),
            (&["gzip;q=1.0, identity; q=0.5, *;q=0"], ALL, s(Gzip)),
            // browsers
            (&["gzip, deflate, br, zstd"], ALL, s(Zstd)),
            (&["gzip, deflate, br, zstd"], &[Br, Zstd, Gzip], s(Br)),
            (&["gzip, deflate, br"], ALL, s(Br)),
            (&["gzip, deflate"], ALL, s(Gzip)),
            (&["identity"], ALL, s(Identity)),
            // weights beat the server's preference; ties go to it
            (&["gzip;q=1, br;q=0.9, zstd;q=0.8"], ALL, s(Gzip)),
            (&["br;q=0.5, gzip;q=0.5"], ALL, s(Br)),
            (&["br;q=0.5, gzip;q=0.5"], &[Gzip, Br], s(Gzip)),
            (&["gzip;q=0.001"], ALL, s(Gzip)),
            (&["gzip;q=0.5, identity"], ALL, s(Identity)),
            (&["gzip, identity"], ALL, s(Gzip)),
            (&["gzip, identity"], &[Identity, Gzip], s(Identity)),
            // only what is available
            (&["br"], &[Gzip], s(Identity)),
            (&["br"], &[], s(Identity)),
            (&["gzip, br"], &[], s(Identity)),
            // q=0 refuses
            (&["gzip;q=0"], ALL, s(Identity)),
            (&["gzip;q=0, br"], ALL, s(Br)),
            (&["*;q=0, gzip"], ALL, s(Gzip)),
            (&["*, gzip;q=0"], ALL, s(Zstd)),
            (&["*, zstd;q=0"], ALL, s(Br)),
            (&["gzip;q=0.000"], ALL, s(Identity)),
            // identity refused
            (&["identity;q=0"], ALL, na),
            (&["identity;q=0, gzip"], ALL, s(Gzip)),
            (&["identity;q=0, gzip"], &[Br], na),
            (&["*;q=0"], ALL, na),
            (&["*;q=0"], &[], na),
            (&["*;q=0, identity"], &[], s(Identity)),
            (&["*;q=0, identity;q=0.1"], ALL, s(Identity)),
            (&["br;q=0, *;q=0"], ALL, na),
            // star covers identity
            (&["*;q=0.5, gzip"], &[], s(Identity)),
            (&["*;q=0.5, gzip"], &[Gzip], s(Gzip)),
            (&["*;q=0.5, gzip;q=0.2"], &[Gzip], s(Identity)),
            // case and x-gzip
            (&["GZIP"], ALL, s(Gzip)),
            (&["Br;Q=1"], ALL, s(Br)),
            (&["x-gzip"], ALL, s(Gzip)),
            (&["X-GZIP;q=0.4, identity;q=0.3"], ALL, s(Gzip)),
            // field lines combine
            (&["gzip", "br"], ALL, s(Br)),
            (&["gzip;q=0.5", "zstd;q=0.6"], ALL, s(Zstd)),
            // whitespace
            (&["  gzip ;  q=0.5 ,br ; q=0.4 "], ALL, s(Gzip)),
            (&["gzip;q = 0.5, br;q=0.4"], ALL, s(Gzip)),
            (&["gzip\t;\tq=0.5"], ALL, s(Gzip)),
            // empty members
            (&[",,gzip,,"], ALL, s(Gzip)),
            (&[" , "], ALL, s(Identity)),
            // malformed members: unreadable weight is q=0, a non-token coding is dropped
            (&["gzip;q=2"], ALL, s(Identity)),
            (&["gzip;q=1.5"], ALL, s(Identity)),
            (&["gzip;q=1.001"], ALL, s(Identity)),
            (&["gzip;q=0.1234"], ALL, s(Identity)),
            (&["gzip;q=.5"], ALL, s(Identity)),
            (&["gzip;q=-1"], ALL, s(Identity)),
            (&["gzip;q="], ALL, s(Identity)),
            (&["gzip;q"], ALL, s(Identity)),
            (&["gzip;"], ALL, s(Identity)),
            (&["gzip;level=9"], ALL, s(Identity)),
            (&["gzip;q=0.5;q=0.6"], ALL, s(Identity)),
            (&["gzip q=0.5"], ALL, s(Identity)),
            (&["gzip;q=0x1"], ALL, s(Identity)),
            (&["gzip;q=0.5x, br"], ALL, s(Br)),
            (&["*;q=nope"], ALL, na),
            (&["identity;q=?"], ALL, na),
            (&["\"gzip\", br"], ALL, s(Br)),
            (&["gz(ip), br;q=0.3"], ALL, s(Br)),
            (&["gzip;q=1.000"], ALL, s(Gzip)),
            (&["gzip;q=1."], ALL, s(Gzip)),
            (&["gzip;q=0."], ALL, s(Identity)),
            // a coding listed twice takes the lower weight
            (&["gzip, gzip;q=0"], ALL, s(Identity)),
            (&["gzip;q=0", "gzip"], ALL, s(Identity)),
            (&["br;q=0.9, zstd;q=0.5, br;q=0.1"], ALL, s(Zstd)),
            (&["x-gzip;q=0, gzip"], ALL, s(Identity)),
            // unknown codings are ignored
            (&["compress, deflate, dcz"], ALL, s(Identity)),
            (&["aes128gcm;q=1, br;q=0.1"], ALL, s(Br)),
        ];
        for (ae, available, want) in rows {
            assert_eq!(
                choose(&req(ae, None), available),
                want,
                "Accept-Encoding {ae:?}, available {available:?}"
            );
        }
    }

    #[test]
    fn without_accept_encoding_identity_is_sent() {
        assert_eq!(choose(&req(&[], None), ALL), Choice::Send(Identity));
        assert_eq!(choose(&req(&[], None), &[]), Choice::Send(Identity));
    }

    #[test]
    fn a_request_with_no_transform_gets_identity() {
        for cc in [
            "no-transform",
            "max-age=0, NO-TRANSFORM",
            "no-cache,no-transform",
        ] {
            assert_eq!(
                choose(&req(&["gzip, br, zstd"], Some(cc)), ALL),
                Choice::Send(Identity),
                "{cc}"
            );
        }
        assert_eq!(
            choose(&req(&["gzip"], Some("no-cache")), ALL),
            Choice::Send(Gzip)
        );
    }

    #[test]
    fn not_acceptable_is_answered_in_identity() {
        assert_eq!(Choice::NotAcceptable.coding(), Identity);
        assert_eq!(Choice::Send(Br).coding(), Br);
    }

    #[test]
    fn acceptability_per_rfc_rules() {
        use Acceptability::*;
        let ae = AcceptEncoding::parse([b"gzip;q=0.5, zstd;q=0".as_slice()]);
        assert_eq!(ae.acceptability(Gzip), Weighted(500));
        assert_eq!(ae.acceptability(Zstd), No);
        assert_eq!(ae.acceptability(Br), No, "not listed, no star");
        assert_eq!(ae.acceptability(Identity), ByDefault);
        assert!(ByDefault < Weighted(1) && No < ByDefault);
        let star = AcceptEncoding::parse([b"*;q=0.25".as_slice()]);
        assert_eq!(star.acceptability(Br), Weighted(250));
        assert_eq!(star.acceptability(Identity), Weighted(250));
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        let rows: [(&str, Option<Weight>); 14] = [
            ("0", Some(0)),
            ("1", Some(1000)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.005", Some(5)),
            ("0.", Some(0)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("1.0001", None),
            ("1.1", None),
            ("0.0001", None),
            ("2", None),
            ("00.5", None),
            ("", None),
        ];
        for (v, want) in rows {
            assert_eq!(qvalue(v.as_bytes()), want, "{v}");
        }
    }

    /// A hostile field (hundreds of KiB of members, junk bytes) is read in one pass without
    /// allocating; it only has to finish and decide something sane.
    #[test]
    fn hostile_fields_are_read_in_bounded_work() {
        let mut junk = Vec::new();
        for i in 0..20_000u32 {
            junk.extend_from_slice(match i % 5 {
                0 => b"gzip;q=0.5;q=0.5;;;,".as_slice(),
                1 => b";;;;====,,,,",
                2 => b"\x80\xff;q=1,",
                3 => b"*;q=1.0000000000000000,",
                _ => b"br;q=0.7 ,",
            });
        }
        let ae = AcceptEncoding::parse([junk.as_slice()]);
        assert_eq!(ae.acceptability(Gzip), Acceptability::No);
        assert_eq!(ae.acceptability(Br), Acceptability::Weighted(700));
        assert_eq!(choose_from(&ae, ALL), Choice::Send(Br));
    }
}
