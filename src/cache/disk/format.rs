//! The entry file format: one stored response per file, self-describing and checksummed.
//!
//! ```text
//! offset  size      field
//! 0       4         magic "ETGD"
//! 4       2         format version (little endian), FORMAT_VERSION
//! 6       2         reserved, 0
//! 8       4         meta length M (JSON: key, variance, freshness, vary, tags, URL, ...)
//! 12      4         head length H (the response head as HTTP/1.1 text)
//! 16      8         body length B
//! 24      B         body
//! 24+B    M         meta
//! 24+B+M  H         head
//! end-32  32        BLAKE3 of bytes 24..end-32, then of bytes 0..24
//! ```
//!
//! The body comes first and the prefix is hashed last so that a response too large to hold in
//! memory can be written as it arrives: its body is appended and hashed chunk by chunk, and
//! only when it is complete are its meta and head (the computed ETag, the freshness) known and
//! the prefix filled in ([`tail`]).
//!
//! Everything read back is untrusted: a file that is short, long, of another version or whose
//! checksum does not match is an error, never a response. Recovery reads only the first
//! [`PREFIX_LEN`] bytes and the meta (the index needs no more); the checksum is verified when
//! the entry is read to be served.

use crate::cache::entry::{Entry, Tags};
use crate::http::freshness::Freshness;
use crate::http::vary::VarySpec;
use bytes::Bytes;
use http::HeaderName;
use pingora_cache::key::HashBinary;
use pingora_http::ResponseHeader;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;

pub const MAGIC: &[u8; 4] = b"ETGD";
/// 1: meta and head before the body (files of it are misses, removed at recovery); 2: now.
pub const FORMAT_VERSION: u16 = 2;
/// Magic, version, reserved and the three lengths.
pub const PREFIX_LEN: usize = 24;
pub const CHECKSUM_LEN: usize = 32;
/// Meta and head are small; anything larger is not a file this version wrote.
const MAX_META: usize = 1 << 20;
const MAX_HEAD: usize = 1 << 20;
/// Header fields in a head at most (more is not a head etagate stored).
const MAX_FIELDS: usize = 512;

#[derive(Debug, PartialEq, Eq)]
pub enum FormatError {
    Short,
    Magic,
    Version(u16),
    Lengths,
    Checksum,
    Meta(String),
    Head(String),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Short => write!(f, "shorter than its header says (torn or truncated)"),
            FormatError::Magic => write!(f, "not an etagate entry file"),
            FormatError::Version(v) => write!(
                f,
                "format version {v}, this etagate reads version {FORMAT_VERSION}"
            ),
            FormatError::Lengths => write!(f, "section lengths out of range"),
            FormatError::Checksum => write!(f, "checksum mismatch (corrupt)"),
            FormatError::Meta(e) => write!(f, "unreadable metadata: {e}"),
            FormatError::Head(e) => write!(f, "unreadable response head: {e}"),
        }
    }
}

/// What the index keeps of an entry (everything but its head and body).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub primary: HashBinary,
    pub variance: Option<HashBinary>,
    /// `None`: no Vary; `Some([])`: `Vary: *`; else the nominated fields.
    pub vary: Option<Vec<String>>,
    pub freshness: Freshness,
    pub etag_computed: bool,
    pub tags: Vec<String>,
    pub url: Option<String>,
    pub created: SystemTime,
}

impl Meta {
    pub fn of(primary: HashBinary, e: &Entry) -> Meta {
        Meta {
            primary,
            variance: e.variance,
            vary: match &e.vary {
                VarySpec::None => None,
                VarySpec::Star => Some(Vec::new()),
                VarySpec::Headers(h) => Some(h.iter().map(|n| n.as_str().to_string()).collect()),
            },
            freshness: e.freshness,
            etag_computed: e.etag_computed,
            tags: e.tags.iter().map(|t| t.to_string()).collect(),
            url: e.url.as_deref().map(str::to_string),
            created: e.created,
        }
    }

    pub fn vary_spec(&self) -> VarySpec {
        match &self.vary {
            None => VarySpec::None,
            Some(v) if v.is_empty() => VarySpec::Star,
            Some(v) => VarySpec::Headers(
                v.iter()
                    .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                    .collect(),
            ),
        }
    }

    pub fn tags(&self) -> Tags {
        self.tags.iter().map(|t| Arc::from(t.as_str())).collect()
    }
}

/// The response head as HTTP/1.1 text.
fn head_bytes(h: &ResponseHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("HTTP/1.1 {}\r\n", h.status.as_u16()).as_bytes());
    // With the names' case as they were written, so a disk hit spells them like a memory hit.
    h.header_to_h1_wire(&mut out);
    out.extend_from_slice(b"\r\n");
    out
}

fn parse_head(bytes: &[u8]) -> Result<ResponseHeader, FormatError> {
    let mut fields = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(FormatError::Head("incomplete".to_string())),
        Err(e) => return Err(FormatError::Head(e.to_string())),
    }
    let status = resp
        .code
        .ok_or(FormatError::Head("no status".to_string()))?;
    let mut h = ResponseHeader::build(status, Some(resp.headers.len()))
        .map_err(|e| FormatError::Head(e.to_string()))?;
    for f in resp.headers.iter() {
        h.append_header(f.name.to_string(), f.value)
            .map_err(|e| FormatError::Head(e.to_string()))?;
    }
    Ok(h)
}

/// The whole file for `entry`, stored under `primary`.
pub fn encode(primary: HashBinary, entry: &Entry) -> Vec<u8> {
    let body = &entry.body;
    let mut sum = blake3::Hasher::new();
    sum.update(body);
    let meta = Meta::of(primary, entry);
    let (prefix, tail) = tail(&meta, &entry.header, body.len() as u64, sum);
    let mut out = Vec::with_capacity(PREFIX_LEN + body.len() + tail.len());
    out.extend_from_slice(&prefix);
    out.extend_from_slice(body);
    out.extend_from_slice(&tail);
    out
}

/// What follows a body of `body_len` bytes (meta, head, checksum) and the prefix that goes
/// before it: `body_hash` has been fed the body.
pub fn tail(
    meta: &Meta,
    header: &ResponseHeader,
    body_len: u64,
    mut body_hash: blake3::Hasher,
) -> ([u8; PREFIX_LEN], Vec<u8>) {
    // A derived `Serialize` of plain data cannot fail; an empty meta would read back as damaged.
    let meta = serde_json::to_vec(meta).unwrap_or_default();
    let head = head_bytes(header);
    let mut prefix = [0u8; PREFIX_LEN];
    prefix[0..4].copy_from_slice(MAGIC);
    prefix[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    prefix[8..12].copy_from_slice(&(meta.len() as u32).to_le_bytes());
    prefix[12..16].copy_from_slice(&(head.len() as u32).to_le_bytes());
    prefix[16..24].copy_from_slice(&body_len.to_le_bytes());
    let mut tail = Vec::with_capacity(meta.len() + head.len() + CHECKSUM_LEN);
    tail.extend_from_slice(&meta);
    tail.extend_from_slice(&head);
    body_hash.update(&tail);
    body_hash.update(&prefix);
    tail.extend_from_slice(body_hash.finalize().as_bytes());
    (prefix, tail)
}

/// Section lengths from the fixed prefix: (meta, head, body), checked against the limits.
pub fn lengths(prefix: &[u8]) -> Result<(usize, usize, u64), FormatError> {
    if prefix.len() < PREFIX_LEN {
        return Err(FormatError::Short);
    }
    if &prefix[0..4] != MAGIC {
        return Err(FormatError::Magic);
    }
    let version = u16::from_le_bytes([prefix[4], prefix[5]]);
    if version != FORMAT_VERSION {
        return Err(FormatError::Version(version));
    }
    let word =
        |i: usize| u32::from_le_bytes([prefix[i], prefix[i + 1], prefix[i + 2], prefix[i + 3]]);
    let meta = word(8) as usize;
    let head = word(12) as usize;
    let mut b = [0u8; 8];
    b.copy_from_slice(&prefix[16..24]);
    let body = u64::from_le_bytes(b);
    if meta == 0 || meta > MAX_META || head > MAX_HEAD {
        return Err(FormatError::Lengths);
    }
    Ok((meta, head, body))
}

/// The file length the prefix announces (saturating: a damaged prefix can announce anything,
/// and no file is that long).
pub fn file_len(meta: usize, head: usize, body: u64) -> u64 {
    ((PREFIX_LEN + meta + head + CHECKSUM_LEN) as u64).saturating_add(body)
}

/// Where the meta of a file with a body of `body` bytes starts.
pub fn meta_offset(body: u64) -> u64 {
    PREFIX_LEN as u64 + body
}

/// The meta of a file from its prefix and its meta bytes (recovery: no checksum yet).
pub fn decode_meta(meta: &[u8]) -> Result<Meta, FormatError> {
    serde_json::from_slice(meta).map_err(|e| FormatError::Meta(e.to_string()))
}

/// Meta and head from the bytes after the body (`meta ‖ head ‖ checksum`), whose checksum the
/// caller has verified.
pub fn decode_tail(tail: &[u8], m: usize, h: usize) -> Result<(Meta, ResponseHeader), FormatError> {
    let meta = decode_meta(tail.get(..m).ok_or(FormatError::Short)?)?;
    let head = parse_head(tail.get(m..m + h).ok_or(FormatError::Short)?)?;
    Ok((meta, head))
}

/// A whole file, verified: its meta, head and body.
pub fn decode(file: &[u8]) -> Result<(Meta, ResponseHeader, Bytes), FormatError> {
    let (m, h, b) = lengths(file)?;
    let expected = file_len(m, h, b);
    if (file.len() as u64) < expected {
        return Err(FormatError::Short);
    }
    if file.len() as u64 != expected {
        return Err(FormatError::Lengths);
    }
    let (content, sum) = file.split_at(file.len() - CHECKSUM_LEN);
    let mut hash = blake3::Hasher::new();
    hash.update(&content[PREFIX_LEN..]);
    hash.update(&content[..PREFIX_LEN]);
    if hash.finalize().as_bytes() != sum {
        return Err(FormatError::Checksum);
    }
    let body_end = PREFIX_LEN + b as usize;
    let (meta, head) = decode_tail(&content[body_end..], m, h)?;
    let body = Bytes::copy_from_slice(&content[PREFIX_LEN..body_end]);
    Ok((meta, head, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry() -> Entry {
        let mut h = ResponseHeader::build(200, None).expect("header");
        h.append_header("content-type", "text/plain").expect("ct");
        h.append_header("ETag", "\"b3-x\"").expect("etag");
        h.append_header("x-bytes", &b"caf\xe9"[..])
            .expect("obs-text");
        Entry::new(
            7,
            h,
            Bytes::from_static(b"hello, disk"),
            Freshness::plain(Duration::from_secs(60), SystemTime::now()),
            Some([9u8; 16]),
            VarySpec::Headers(vec![HeaderName::from_static("accept-language")]),
            true,
        )
        .labelled(
            vec![Arc::from("t1"), Arc::from("t2")].into(),
            Some(Arc::from("http://a.test/x")),
        )
    }

    #[test]
    fn an_entry_round_trips() {
        let e = entry();
        let file = encode([1u8; 16], &e);
        let (meta, head, body) = decode(&file).expect("valid");
        assert_eq!(meta, Meta::of([1u8; 16], &e));
        assert_eq!(meta.vary_spec(), e.vary);
        assert_eq!(head.status, e.header.status);
        assert_eq!(head.headers, e.header.headers);
        let names = |h: &ResponseHeader| -> Vec<Vec<u8>> {
            h.case_header_iter()
                .map(|(n, _)| n.as_slice().to_vec())
                .collect()
        };
        assert_eq!(names(&head), names(&e.header), "names keep their case");
        assert_eq!(body, e.body);
        let (m, _, b) = lengths(&file).expect("lengths");
        let at = meta_offset(b) as usize;
        assert_eq!(decode_meta(&file[at..at + m]).expect("meta"), meta);
    }

    #[test]
    fn damaged_files_are_errors_never_entries() {
        let file = encode([1u8; 16], &entry());
        let mut flipped = file.clone();
        let mid = file.len() / 2;
        flipped[mid] ^= 0x01;
        let mut version = file.clone();
        version[4] = 1;
        let mut huge = file.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut long = file.clone();
        long.push(0);
        let cases: [(&str, Vec<u8>, FormatError); 7] = [
            ("a body length no file has", huge, FormatError::Short),
            ("a flipped byte", flipped, FormatError::Checksum),
            (
                "truncated",
                file[..file.len() - 1].to_vec(),
                FormatError::Short,
            ),
            (
                "only the prefix",
                file[..PREFIX_LEN].to_vec(),
                FormatError::Short,
            ),
            ("another version", version, FormatError::Version(1)),
            ("a byte too many", long, FormatError::Lengths),
            (
                "not ours",
                b"GIF89a..................................".to_vec(),
                FormatError::Magic,
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(decode(&bytes).err(), Some(want), "{what}");
        }
        for n in 0..PREFIX_LEN {
            assert!(decode(&file[..n]).is_err(), "prefix of {n} bytes");
        }
    }
}
