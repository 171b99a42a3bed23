//! Bounded decoding of a body an origin encoded itself (gzip, br, zstd), so that etagate can
//! tag its content rather than its bytes.
//!
//! Why: an origin that compresses may send different bytes for the same content every time
//! (Django's `GZipMiddleware` writes a random file name into each gzip header against BREACH;
//! servers in a pool compress at different levels or stamp a time). A tag of the bytes sent
//! would change with every response, and no revalidation would ever get a 304. The hash of the
//! decoded content does not change; the tag built from it is weak (`etag::decoded_etag` says
//! why, by RFC 9110 §8.8.1).
//!
//! An origin's body is input etagate does not control, so decoding is bounded ([`Limits`]):
//!
//! - **size**: at most `max_output` decoded bytes;
//! - **expansion**: at most `max_ratio` decoded bytes per encoded byte (once past
//!   `ratio_floor`, so a small body that compresses very well is still fine). A compression
//!   bomb (10 MiB of zeros are 10 KiB of gzip, a few hundred bytes of brotli or zstd) stops
//!   there;
//! - **memory**: the output grows in steps and never beyond the limit; [`decoded_hash`]
//!   keeps no output at all. The decoders hold their window besides: 32 KiB for gzip, at most
//!   8 MiB for zstd (a frame asking for more is refused, as RFC 9659 allows), and for brotli a
//!   ring buffer of the stream's window once the output passes a few blocks (at most 16 MiB,
//!   RFC 7932; 4 MiB at the encoders' default, measured in `tests/decode_memory.rs`);
//! - **CPU**: decoding stops at the limit, so the work is linear in the encoded input (itself
//!   bounded by what etagate holds back) plus the bounded output.
//!
//! A body that exceeds a limit, is truncated, has bytes after its end, or is not in the
//! coding it claims gets no decoded tag ([`DecodeError`]).

use super::coding::Coding;
use std::io::{self, Read};

/// The bounds of one decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decoded bytes at most.
    pub max_output: usize,
    /// Decoded bytes per encoded byte at most, once the output passes `ratio_floor`.
    pub max_ratio: usize,
    /// Output below this size is never refused for its ratio.
    pub ratio_floor: usize,
}

impl Limits {
    /// 8 MiB of content (eight times etagate's default hold-back for hashing), 200 decoded
    /// bytes per encoded byte past 64 KiB. Real text compresses far less than 200:1 (at most
    /// 60:1 on the benchmark corpus, `docs/performance-notes.md`), while deflate alone reaches
    /// 1032:1 and brotli or zstd millions to one on a bomb.
    pub const DEFAULT: Limits = Limits {
        max_output: 8 << 20,
        max_ratio: 200,
        ratio_floor: 64 << 10,
    };

    /// The most output a body of `input_len` encoded bytes may decode to, and the error
    /// exceeding it gives.
    fn cap(&self, input_len: usize) -> (usize, DecodeError) {
        let by_ratio = input_len
            .saturating_mul(self.max_ratio)
            .max(self.ratio_floor);
        if by_ratio < self.max_output {
            (by_ratio, DecodeError::TooExpanded)
        } else {
            (self.max_output, DecodeError::TooLarge)
        }
    }
}

/// Why an encoded body gets no decoded tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the decoded content is larger than the limit")]
    TooLarge,
    #[error("the content expands more than the ratio limit allows")]
    TooExpanded,
    #[error("the body is not valid in its content coding (truncated, trailing bytes, or another format)")]
    Corrupt,
}

/// Decode `input` from `coding` into its content, within `limits`. `Identity` copies (within
/// `max_output`).
pub fn decode(coding: Coding, input: &[u8], limits: &Limits) -> Result<Vec<u8>, DecodeError> {
    let (cap, _) = limits.cap(input.len());
    let mut out: Vec<u8> = Vec::new();
    run(coding, input, limits, &mut |chunk| {
        let needed = out.len() + chunk.len();
        if needed > out.capacity() {
            // grow by doubling, but never past the limit: `run` has checked `needed <= cap`
            let target = needed.max(out.capacity() * 2).max(16 << 10).min(cap);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(chunk);
    })?;
    Ok(out)
}

/// The BLAKE3 hash of the content `input` decodes to, within `limits`, keeping none of it.
pub fn decoded_hash(
    coding: Coding,
    input: &[u8],
    limits: &Limits,
) -> Result<blake3::Hash, DecodeError> {
    let mut h = blake3::Hasher::new();
    run(coding, input, limits, &mut |chunk| {
        h.update(chunk);
    })?;
    Ok(h.finalize())
}

/// The largest window a zstd frame may ask for: 8 MiB (RFC 9659).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Decode into `sink`, chunk by chunk; every chunk handed over keeps the total within the cap.
fn run(
    coding: Coding,
    input: &[u8],
    limits: &Limits,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), DecodeError> {
    let cap = limits.cap(input.len());
    if coding != Coding::Identity && input.is_empty() {
        // no coding etagate knows has an empty encoding
        return Err(DecodeError::Corrupt);
    }
    match coding {
        Coding::Identity => pump(&mut &input[..], cap, sink),
        Coding::Gzip => pump(&mut flate2::bufread::MultiGzDecoder::new(input), cap, sink),
        Coding::Br => {
            let mut d = brotli::Decompressor::new(input, 4096);
            pump(&mut d, cap, sink)?;
            // Bytes after the end of the stream: the decoder reports those it has buffered on
            // the read after the one that ended the stream, and has not seen the others.
            match d.read(&mut [0u8; 1]) {
                Ok(0) if d.get_ref().is_empty() => Ok(()),
                _ => Err(DecodeError::Corrupt),
            }
        }
        Coding::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|_| DecodeError::Corrupt)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|_| DecodeError::Corrupt)?;
            pump(&mut d, cap, sink)
        }
    }
}

fn pump<R: Read>(
    r: &mut R,
    (cap, over): (usize, DecodeError),
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), DecodeError> {
    let mut buf = [0u8; 16 << 10];
    let mut total = 0usize;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(DecodeError::Corrupt),
        };
        total += n;
        if total > cap {
            return Err(over);
        }
        sink(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::encode::encode;
    use std::io::Write;

    fn text(n: usize) -> Vec<u8> {
        let words = [
            "etag", "cache", "vary", "origin", "gzip", "304", "range", "fresh",
        ];
        let mut s = Vec::with_capacity(n + 16);
        let mut i = 0usize;
        while s.len() < n {
            s.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
            s.push(if i.is_multiple_of(11) { b'\n' } else { b' ' });
            i += 1;
        }
        s.truncate(n);
        s
    }

    fn gzip_with(header: flate2::GzBuilder, level: u32, content: &[u8]) -> Vec<u8> {
        let mut w = header.write(Vec::new(), flate2::Compression::new(level));
        w.write_all(content).expect("write");
        w.finish().expect("finish")
    }

    #[test]
    fn every_coding_round_trips_and_hashes_the_content() {
        let content = text(50_000);
        let want = blake3::hash(&content);
        for coding in [Coding::Identity, Coding::Gzip, Coding::Br, Coding::Zstd] {
            let enc = encode(coding, 5, &content).expect("encode");
            let back = decode(coding, &enc, &Limits::DEFAULT).expect("decode");
            assert!(back == content, "{coding:?}");
            assert_eq!(
                decoded_hash(coding, &enc, &Limits::DEFAULT),
                Ok(want),
                "{coding:?}"
            );
        }
    }

    /// Django's GZipMiddleware (against BREACH) writes a random file name into every gzip
    /// header; other servers stamp a time, add an extra field or a comment, compress at another
    /// level, or send several members. Each is the same content, so the same hash.
    #[test]
    fn differently_padded_gzip_of_one_content_has_one_hash() {
        let content = text(20_000);
        let want = blake3::hash(&content);
        let mut two_members = gzip_with(flate2::GzBuilder::new(), 6, &content[..7_000]);
        two_members.extend(gzip_with(flate2::GzBuilder::new(), 1, &content[7_000..]));
        let variants = [
            gzip_with(flate2::GzBuilder::new(), 6, &content),
            gzip_with(flate2::GzBuilder::new().filename("kq3ZpX0"), 6, &content),
            gzip_with(flate2::GzBuilder::new().filename("a9"), 6, &content),
            gzip_with(flate2::GzBuilder::new().mtime(1_700_000_000), 6, &content),
            gzip_with(flate2::GzBuilder::new().extra(vec![7; 100]), 6, &content),
            gzip_with(flate2::GzBuilder::new().comment("padding"), 6, &content),
            gzip_with(flate2::GzBuilder::new().operating_system(3), 6, &content),
            gzip_with(flate2::GzBuilder::new(), 1, &content),
            gzip_with(flate2::GzBuilder::new(), 9, &content),
            two_members,
        ];
        for (i, a) in variants.iter().enumerate() {
            for b in &variants[i + 1..] {
                assert_ne!(a, b, "the variants differ in their bytes");
            }
            assert_eq!(
                decoded_hash(Coding::Gzip, a, &Limits::DEFAULT),
                Ok(want),
                "variant {i}"
            );
        }
    }

    #[test]
    fn other_encoders_of_one_content_have_one_hash() {
        let content = text(30_000);
        let want = blake3::hash(&content);
        for coding in [Coding::Br, Coding::Zstd] {
            for level in [1, 9] {
                let enc = encode(coding, level, &content).expect("encode");
                assert_eq!(decoded_hash(coding, &enc, &Limits::DEFAULT), Ok(want));
            }
        }
        // zstd frames written one after the other are one content
        let mut frames = encode(Coding::Zstd, 3, &content[..10_000]).expect("zstd");
        frames.extend(encode(Coding::Zstd, 3, &content[10_000..]).expect("zstd"));
        assert_eq!(
            decoded_hash(Coding::Zstd, &frames, &Limits::DEFAULT),
            Ok(want)
        );
    }

    /// 10 MiB of zeros: about 10 KiB of gzip, much less of brotli or zstd.
    #[test]
    fn a_compression_bomb_is_refused() {
        let zeros = vec![0u8; 10 << 20];
        for coding in [Coding::Gzip, Coding::Br, Coding::Zstd] {
            let bomb = encode(coding, 9, &zeros).expect("encode");
            assert!(bomb.len() < 20 << 10, "{coding:?}: {}", bomb.len());
            // the ratio stops it first with the default limits...
            assert_eq!(
                decode(coding, &bomb, &Limits::DEFAULT).map(|v| v.len()),
                Err(DecodeError::TooExpanded),
                "{coding:?}"
            );
            assert_eq!(
                decoded_hash(coding, &bomb, &Limits::DEFAULT),
                Err(DecodeError::TooExpanded)
            );
            // ...the size limit when the ratio allows anything
            let size_only = Limits {
                max_output: 1 << 20,
                max_ratio: usize::MAX,
                ratio_floor: 0,
            };
            assert_eq!(
                decode(coding, &bomb, &size_only).map(|v| v.len()),
                Err(DecodeError::TooLarge)
            );
            // and with room for it, it is just content
            let roomy = Limits {
                max_output: 16 << 20,
                max_ratio: usize::MAX,
                ratio_floor: 0,
            };
            assert_eq!(
                decoded_hash(coding, &bomb, &roomy),
                Ok(blake3::hash(&zeros)),
                "{coding:?}"
            );
        }
    }

    #[test]
    fn limits_are_exact() {
        let content = text(100_000);
        let gz = encode(Coding::Gzip, 6, &content).expect("gzip");
        let at = |max_output, max_ratio, ratio_floor| {
            decode(
                Coding::Gzip,
                &gz,
                &Limits {
                    max_output,
                    max_ratio,
                    ratio_floor,
                },
            )
            .map(|v| v.len())
        };
        assert_eq!(
            at(100_000, 1000, 0),
            Ok(100_000),
            "exactly at the size limit"
        );
        assert_eq!(at(99_999, 1000, 0), Err(DecodeError::TooLarge));
        let ratio = content.len().div_ceil(gz.len());
        assert_eq!(at(1 << 30, ratio, 0), Ok(100_000));
        assert_eq!(at(1 << 30, ratio - 1, 0), Err(DecodeError::TooExpanded));
        assert_eq!(at(1 << 30, 1, 100_000), Ok(100_000), "under the floor");
        assert_eq!(at(1 << 30, 1, 99_999), Err(DecodeError::TooExpanded));
        let tiny = Limits {
            max_output: 10,
            ..Limits::DEFAULT
        };
        assert_eq!(
            decoded_hash(Coding::Identity, &content, &tiny),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn the_output_never_holds_more_than_the_limit() {
        let content = text(300_000);
        let gz = encode(Coding::Gzip, 6, &content).expect("gzip");
        let limits = Limits {
            max_output: 300_000,
            max_ratio: usize::MAX,
            ratio_floor: 0,
        };
        let out = decode(Coding::Gzip, &gz, &limits).expect("decode");
        assert_eq!(out.len(), 300_000);
        assert!(out.capacity() <= 300_000, "capacity {}", out.capacity());
    }

    #[test]
    fn damaged_bodies_are_corrupt() {
        let content = text(40_000);
        for coding in [Coding::Gzip, Coding::Br, Coding::Zstd] {
            let enc = encode(coding, 6, &content).expect("encode");
            let mut trailing = enc.clone();
            trailing.extend_from_slice(b"<!-- trailing -->");
            let mut flipped = enc.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x55;
            let cases: [(&str, &[u8]); 5] = [
                ("truncated", &enc[..enc.len() - 5]),
                ("half", &enc[..enc.len() / 2]),
                ("trailing bytes", &trailing),
                ("empty", b""),
                ("plain text", b"<html>not compressed at all</html>"),
            ];
            for (name, body) in cases {
                assert_eq!(
                    decoded_hash(coding, body, &Limits::DEFAULT),
                    Err(DecodeError::Corrupt),
                    "{coding:?}: {name}"
                );
            }
            // a flipped bit is caught by gzip's CRC, by brotli's or zstd's structure, or yields
            // other content: never the same hash as the original
            assert_ne!(
                decoded_hash(coding, &flipped, &Limits::DEFAULT),
                Ok(blake3::hash(&content)),
                "{coding:?}: flipped"
            );
        }
        let gz = encode(Coding::Gzip, 6, &content).expect("gzip");
        assert_eq!(
            decoded_hash(Coding::Br, &gz, &Limits::DEFAULT),
            Err(DecodeError::Corrupt)
        );
        assert_eq!(
            decoded_hash(Coding::Zstd, &gz, &Limits::DEFAULT),
            Err(DecodeError::Corrupt)
        );
        assert_eq!(
            decode(Coding::Identity, b"", &Limits::DEFAULT),
            Ok(Vec::new())
        );
    }

    /// RFC 9659: a zstd frame whose window exceeds 8 MiB is refused rather than given the
    /// memory it asks for.
    #[test]
    fn a_zstd_window_beyond_8_mib_is_refused() {
        let content = text(64 << 10);
        // streaming, so the window is not shrunk to the content's size
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(27))
            .expect("window");
        enc.write_all(&content).expect("write");
        let big_window = enc.finish().expect("finish");
        assert_eq!(
            decode(Coding::Zstd, &big_window, &Limits::DEFAULT).map(|v| v.len()),
            Err(DecodeError::Corrupt)
        );
        // the frame itself is fine: it is the window that is refused
        let mut d = zstd::stream::read::Decoder::with_buffer(&big_window[..]).expect("decoder");
        d.window_log_max(27).expect("window");
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).expect("decodes with a 128 MiB window");
        assert!(out == content);
    }
}
