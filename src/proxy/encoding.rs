//! Sending a response in the content coding its request accepts (`docs/compression.md`):
//! which coding, the representation's header fields and tag, and its body: compressed once
//! for a stored response and kept beside it, whole for one request, or while it streams.

use crate::cache::entry::{Encoded, Entry};
use crate::cache::storage::{Found, MemStore};
use crate::config::model::CompressionPolicy;
use crate::http::accept_encoding::choose as choose_coding;
use crate::http::coding::Coding;
use crate::http::compressible::{may_compress, merge_vary, represent, weakened, Verdict};
use crate::http::encode::{encode, StreamEncoder};
use crate::http::etag::encoded_etag;
use crate::metrics::compression::Compression;
use crate::metrics::METRICS;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, ACCEPT_RANGES, ETAG, TRANSFER_ENCODING, VARY};
use http::{Method, Version};
use pingora_cache::key::HashBinary;
use pingora_http::{RequestHeader, ResponseHeader};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Bodies at least this large are compressed on Tokio's blocking pool, so that the thread
/// serving other connections is never held for long: at the stored levels 16 KiB take about
/// half a millisecond (`docs/compression.md`, "Levels").
const BLOCKING_FROM: usize = 16 << 10;

/// Compressions on the blocking pool at once, process-wide. A request that finds them all
/// busy sends its response uncompressed rather than wait: a burst of first requests (a cold
/// cache, or a client asking for many distinct URLs to make etagate compress) costs at most
/// this many cores' worth of compression and the memory of this many compressors.
const BLOCKING_AT_ONCE: usize = 4;
static BLOCKING: Semaphore = Semaphore::const_new(BLOCKING_AT_ONCE);

/// Responses compressed while they stream at once, process-wide. Each holds a compressor
/// (with the windows `http::encode` caps for streams, about 1 to 2 MiB for brotli and zstd),
/// for as long as its client takes to read it; past this many, responses stream in identity.
const STREAMS_AT_ONCE: usize = 64;
static STREAMS: Semaphore = Semaphore::const_new(STREAMS_AT_ONCE);

/// What compressing a complete body gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Compressed {
    /// The encoded body, smaller than the input.
    Done(Bytes),
    /// Compressing does not make it smaller: send it as it is.
    NoGain,
    /// Not compressed this time (every compressor busy, or a compressor failed, logged).
    Skipped,
}

/// The coding the request gets the response in, when the route compresses it: `None` when
/// compression is off for the route or this response may not be compressed (then nothing
/// changes, `Vary` included); `Some(Identity)` when it may be but the request accepts none of
/// the route's codings. `body_len` is the identity body's (`u64::MAX` when unknown). The
/// method plays no part, so a HEAD gets the fields its GET would.
pub fn choose(
    policy: Option<&CompressionPolicy>,
    req: &HeaderMap,
    status: u16,
    resp: &HeaderMap,
    body_len: u64,
) -> Option<Coding> {
    let p = policy?;
    match may_compress(status, resp, body_len, &p.rules) {
        Verdict::Compress => Some(choose_coding(req, &p.codings).coding()),
        Verdict::Skip(_) => None,
    }
}

/// Compress a complete body (in pieces, as it was held back), on the blocking pool from
/// [`BLOCKING_FROM`] bytes.
///
/// Pieces are joined first (one more copy of a body the route's `etag.max_buffer` bounds):
/// an encoder's output depends on how its input is cut, and a stored body is one piece, so
/// this way a miss sends the bytes, and the tag, its hits will send.
pub async fn compress(
    coding: Coding,
    level: i32,
    pieces: &[Bytes],
    kind: Compression,
) -> Compressed {
    let len: usize = pieces.iter().map(Bytes::len).sum();
    let owned = pieces.to_vec();
    let work = move || match owned.as_slice() {
        [one] => encode(coding, level, one),
        many => encode(coding, level, &many.concat()),
    };
    let out = if len >= BLOCKING_FROM {
        let Ok(_permit) = BLOCKING.try_acquire() else {
            METRICS.compression.skipped(coding);
            return Compressed::Skipped;
        };
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    } else {
        work()
    };
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            log::warn!(
                "compressing a {len}-byte body in {} failed: {e}",
                coding.token()
            );
            return Compressed::Skipped;
        }
    };
    METRICS.compression.compressed(coding, kind, len, out.len());
    if out.len() < len {
        Compressed::Done(Bytes::from(out))
    } else {
        Compressed::NoGain
    }
}

/// A stored response's body in `coding` at `level`: kept beside the stored response once
/// made, so hits compress nothing. `None`: send identity this time (compressing does not pay
/// for this body, which is remembered too; or another request is compressing it right now,
/// or every compressor is busy).
///
/// One request per stored response and coding compresses; the others meanwhile get the
/// identity representation rather than wait for it or compress it again.
pub async fn stored(
    store: &MemStore,
    primary: &HashBinary,
    entry: &Arc<Entry>,
    coding: Coding,
    level: i32,
) -> Option<Encoded> {
    if let Some(e) = entry.encoding(coding, level) {
        return e.body.is_some().then(|| e.clone());
    }
    let claim = Claim::new(entry, coding)?;
    let body = match compress(
        coding,
        level,
        std::slice::from_ref(&entry.body),
        Compression::Stored,
    )
    .await
    {
        Compressed::Done(b) => Some(b),
        Compressed::NoGain => None,
        Compressed::Skipped => return None,
    };
    claim.keep();
    let encoded = Encoded::new(coding, level, body, entry.header.headers.get(ETAG));
    // The copy has the compression's claim cleared; this entry's stays set, so a request still
    // holding it does not compress again while the copy takes its place.
    store.keep_encoded(primary, entry, encoded.clone());
    encoded.body.is_some().then_some(encoded)
}

/// A request's claim on compressing one stored response in one coding, given up when it ends
/// without a result to keep (a busy pool, a failure, a cancelled request), so that a later
/// request may compress it.
struct Claim<'a> {
    entry: &'a Entry,
    coding: Coding,
    kept: bool,
}

impl<'a> Claim<'a> {
    fn new(entry: &'a Entry, coding: Coding) -> Option<Claim<'a>> {
        entry.claim_compression(coding).then_some(Claim {
            entry,
            coding,
            kept: false,
        })
    }

    /// The result goes into a copy of the entry, which replaces it: the claim stays set on
    /// this one, so a request still holding it does not compress again meanwhile.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.entry.release_compression(self.coding);
        }
    }
}

/// The identity response an encoding made for a miss was made from.
pub struct Source<'a> {
    /// Its `ETag`.
    pub tag: Option<&'a HeaderValue>,
    pub len: usize,
    /// Its body is the stored one (the inner request took it from the cache).
    pub from_cache: bool,
}

/// Keep an encoding made for a miss beside the response the cache stored from it, so that
/// its first hit compresses nothing. Only when the stored copy is surely the same content: the
/// same length, and the same tag, which is etagate's own content tag (a hash of those bytes)
/// or the tag of the very body the inner request took from the cache. An origin's tag alone
/// is not enough (a weak one may name other bytes). A copy not stored yet (its fill still
/// finishing) is left alone; its first hit makes the same bytes again.
pub fn keep_beside_stored(
    store: &MemStore,
    primary: &HashBinary,
    req: &HeaderMap,
    source: Source<'_>,
    encoded: Encoded,
) {
    let (Some(tag), Found::Hit(entry)) = (source.tag, store.find(primary, req)) else {
        return;
    };
    let content_tag = encoded_etag(tag.as_bytes(), encoded.coding, &encoded.hash).is_some();
    if (content_tag || source.from_cache)
        && entry.body.len() == source.len
        && entry.header.headers.get(ETAG) == Some(tag)
        && entry.encoding(encoded.coding, encoded.level).is_none()
    {
        store.keep_encoded(primary, &entry, encoded);
    }
}

/// A compressor for a body that streams, with what it has taken and given for the metrics.
pub struct Streaming {
    encoder: Option<StreamEncoder>,
    coding: Coding,
    taken: usize,
    given: usize,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Streaming {
    /// `None` for identity, when [`STREAMS_AT_ONCE`] streams are being compressed (counted
    /// as skipped), or when the compressor cannot be made (logged): identity is sent.
    pub fn new(coding: Coding, level: i32) -> Option<Streaming> {
        if coding == Coding::Identity {
            return None;
        }
        let Ok(permit) = STREAMS.try_acquire() else {
            METRICS.compression.skipped(coding);
            return None;
        };
        match StreamEncoder::new(coding, level) {
            Ok(encoder) => Some(Streaming {
                encoder: Some(encoder?),
                coding,
                taken: 0,
                given: 0,
                _permit: permit,
            }),
            Err(e) => {
                log::warn!("starting a {} compressor failed: {e}", coding.token());
                None
            }
        }
    }

    /// Compress one piece; with `flush`, push out everything so far, so that a response the
    /// origin writes slowly (progress, a log tail, a streamed API answer) reaches the client
    /// piece by piece.
    pub fn push(&mut self, piece: &[u8], flush: bool) -> std::io::Result<Bytes> {
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| std::io::Error::other("compressor already finished"))?;
        let mut out = encoder.push(piece)?;
        if flush {
            out.extend(encoder.flush()?);
        }
        self.taken += piece.len();
        self.given += out.len();
        Ok(Bytes::from(out))
    }

    /// Compress a body piece in place (Pingora's body filter): the piece becomes what the
    /// compressor has ready, and the stream's end carries the compressor's tail.
    pub fn filter(&mut self, body: &mut Option<Bytes>, end: bool) -> pingora_error::Result<()> {
        let failed = |e| {
            pingora_error::Error::because(
                pingora_error::ErrorType::InternalError,
                "compressing the response failed",
                e,
            )
        };
        let mut out = match body.take() {
            Some(piece) => self.push(&piece, !end).map_err(failed)?,
            None => Bytes::new(),
        };
        if end {
            let tail = self.finish().map_err(failed)?;
            out = if out.is_empty() {
                tail
            } else {
                Bytes::from([out, tail].concat())
            };
        }
        *body = (!out.is_empty()).then_some(out);
        Ok(())
    }

    /// The end of the stream.
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| std::io::Error::other("compressor already finished"))?;
        let out = encoder.finish()?;
        self.given += out.len();
        METRICS
            .compression
            .compressed(self.coding, Compression::Streamed, self.taken, self.given);
        Ok(Bytes::from(out))
    }
}

/// Whether a response compressed while it streams may go to this request: its length is
/// unknown, and an HTTP/1.0 client cannot be sent chunked framing (RFC 9112 §6.1).
pub fn may_stream(req: &RequestHeader) -> bool {
    req.version != Version::HTTP_10 && req.version != Version::HTTP_09
}

/// [`represent`] for a body compressed while it streams: its encoded length is not known, so
/// it is sent without `Content-Length` and offers no ranges.
pub fn represent_streamed(
    header: &mut ResponseHeader,
    coding: Coding,
) -> pingora_error::Result<()> {
    represent(header, coding, None)?;
    header.remove_header(&ACCEPT_RANGES);
    Ok(())
}

/// The compressor for a response taking Pingora's pipeline (one etagate does not hold back:
/// a key learned `no-store` or too large, a route without content tags), with `resp` turned
/// into its representation's header. `None` when it goes out in identity: not compressible,
/// not accepted, or a HEAD (which gets the GET's fields and no body to compress).
pub fn for_pipeline(
    req: &RequestHeader,
    policy: Option<&CompressionPolicy>,
    resp: &mut ResponseHeader,
) -> pingora_error::Result<Option<Streaming>> {
    let status = resp.status.as_u16();
    if status == 304 {
        not_modified(req, policy, resp)?;
        return Ok(None);
    }
    if status == 206 {
        // A range Pingora cut from a stored response: identity bytes, with the `Vary` the
        // 200 it was cut from carries.
        if let Some(p) = policy {
            if may_compress(200, &resp.headers, u64::MAX, &p.rules) == Verdict::Compress {
                represent(resp, Coding::Identity, None)?;
            }
        }
        return Ok(None);
    }
    let len = crate::http::headers::content_length(resp).map_or(u64::MAX, |n| n as u64);
    let (Some(mut coding), Some(p)) = (
        choose(policy, &req.headers, status, &resp.headers, len),
        policy,
    ) else {
        return Ok(None);
    };
    if !may_stream(req) {
        coding = Coding::Identity;
    }
    let head = req.method == Method::HEAD;
    let mut encoder = None;
    if coding != Coding::Identity && !head {
        encoder = Streaming::new(coding, p.per_request_levels.of(coding));
        if encoder.is_none() {
            coding = Coding::Identity;
        }
    }
    if coding == Coding::Identity {
        represent(resp, coding, None)?;
    } else {
        represent_streamed(resp, coding)?;
        // chunked on HTTP/1.1 (Pingora's HTTP/2 writer drops the field and frames the body)
        resp.insert_header(TRANSFER_ENCODING, "chunked")?;
    }
    if !head && matches!(status, 200 | 206) {
        METRICS.compression.sent(coding);
    }
    Ok(encoder)
}

/// An origin's 304 through the pipeline, for a request that may have received a compressed
/// 200: the 304 must carry the `Vary` and `ETag` that 200 would (RFC 9110 §15.4.5), so
/// `Accept-Encoding` joins `Vary` and a strong `ETag` (of the identity bytes) is weakened.
/// Whether the 200 was compressible cannot be told from a 304 (it need not carry the
/// `Content-Type`), so this errs to the side that is always true: a weak tag never selects
/// bytes.
fn not_modified(
    req: &RequestHeader,
    policy: Option<&CompressionPolicy>,
    resp: &mut ResponseHeader,
) -> pingora_error::Result<()> {
    let Some(p) = policy else {
        return Ok(());
    };
    let vary = merge_vary(&resp.headers);
    resp.insert_header(VARY, vary)?;
    let identity = choose_coding(&req.headers, &p.codings).coding() == Coding::Identity;
    if identity || !may_stream(req) {
        return Ok(());
    }
    if let Some(weak) = resp.headers.get(ETAG).and_then(weakened) {
        resp.insert_header(ETAG, weak)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::compressible::Rules;
    use crate::http::encode::Levels;
    use crate::http::testing::headers;

    fn policy() -> CompressionPolicy {
        CompressionPolicy {
            codings: Coding::COMPRESSED.to_vec(),
            rules: Rules::default(),
            stored_levels: Levels::STORED,
            per_request_levels: Levels::PER_REQUEST,
        }
    }

    #[test]
    fn the_route_the_response_and_the_request_decide_the_coding() {
        let p = policy();
        let html = headers(&[("content-type", "text/html")]);
        let png = headers(&[("content-type", "image/png")]);
        let gzip_br = headers(&[("accept-encoding", "gzip, br")]);
        let gzip = headers(&[("accept-encoding", "gzip")]);
        let none = headers(&[]);
        type Row<'a> = (
            Option<&'a CompressionPolicy>,
            &'a HeaderMap,
            u16,
            &'a HeaderMap,
            u64,
            Option<Coding>,
        );
        let rows: [Row; 8] = [
            (Some(&p), &gzip_br, 200, &html, 5000, Some(Coding::Br)),
            (Some(&p), &gzip, 200, &html, 5000, Some(Coding::Gzip)),
            (Some(&p), &none, 200, &html, 5000, Some(Coding::Identity)),
            (Some(&p), &gzip_br, 200, &html, u64::MAX, Some(Coding::Br)),
            (Some(&p), &gzip_br, 200, &html, 100, None),
            (Some(&p), &gzip_br, 200, &png, 5000, None),
            (Some(&p), &gzip_br, 206, &html, 5000, None),
            (None, &gzip_br, 200, &html, 5000, None),
        ];
        for (policy, req, status, resp, len, want) in rows {
            assert_eq!(
                choose(policy, req, status, resp, len),
                want,
                "{req:?} {status} {resp:?} {len}"
            );
        }
        let gzip_only = CompressionPolicy {
            codings: vec![Coding::Gzip],
            ..policy()
        };
        assert_eq!(
            choose(Some(&gzip_only), &gzip_br, 200, &html, 5000),
            Some(Coding::Gzip)
        );
    }

    #[test]
    fn one_request_at_a_time_claims_a_compression_and_a_claim_left_unkept_is_given_up() {
        use crate::http::freshness::Freshness;
        use crate::http::vary::VarySpec;
        use std::time::{Duration, SystemTime};
        let entry = Entry::new(
            1,
            ResponseHeader::build(200, None).expect("header"),
            Bytes::from_static(b"body"),
            Freshness::plain(Duration::from_secs(60), SystemTime::now()),
            None,
            VarySpec::None,
            false,
        );
        let first = Claim::new(&entry, Coding::Br).expect("free");
        assert!(Claim::new(&entry, Coding::Br).is_none(), "taken");
        assert!(Claim::new(&entry, Coding::Gzip).is_some(), "per coding");
        drop(first); // a busy pool, a failure, a cancelled request
        let again = Claim::new(&entry, Coding::Br).expect("given up, free again");
        again.keep(); // its result went into a copy: this entry stays claimed
        assert!(Claim::new(&entry, Coding::Br).is_none());
    }

    #[tokio::test]
    async fn compressing_a_body_in_pieces_or_whole() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let noise = [Bytes::from(noise)];
        let got = compress(Coding::Gzip, 6, &noise, Compression::PerRequest).await;
        assert_eq!(got, Compressed::NoGain, "incompressible: sent as it is");
        // pieces on the thread, and a large body on the blocking pool
        let lines = |n: usize| -> String {
            (0..n)
                .map(|i| format!("<li>item {i}: {}</li>\n", i * 7919 % 104729))
                .collect()
        };
        for text in [lines(100), lines(3000)] {
            let text = Bytes::from(text);
            let pieces = [text.slice(..100), text.slice(100..)];
            for coding in Coding::COMPRESSED {
                let Compressed::Done(out) =
                    compress(coding, 5, &pieces, Compression::PerRequest).await
                else {
                    panic!("{coding:?}: compressible text");
                };
                let back = crate::http::decode::decode(
                    coding,
                    &out,
                    &crate::http::decode::Limits::DEFAULT,
                )
                .expect("decodes");
                assert!(back == text, "{coding:?}");
            }
        }
    }
}
