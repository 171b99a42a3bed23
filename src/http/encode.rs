//! Encoding an identity body in one of etagate's codings, at a level: a complete one
//! ([`encode`]) or one that streams ([`StreamEncoder`]); and the levels a route uses
//! ([`Levels`]).
//!
//! The output is a function of the input, the coding and the level alone: the gzip header
//! carries no time, no name and the "unknown" operating system, brotli and zstd run
//! single-threaded. The strong tag of an encoded representation hashes the bytes anyway
//! (`etag::encoded_etag`), so nothing depends on that beyond saving work.
//!
//! Windows stay within what every client decodes: brotli's default 4 MiB (`lgwin` 22), zstd at
//! most 8 MiB (RFC 9659), which levels up to 19 never exceed.

use super::coding::Coding;
use std::io::{self, Write};
use std::ops::RangeInclusive;

/// The compression level of each coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub gzip: u32,
    pub br: u32,
    pub zstd: i32,
}

impl Levels {
    /// For a response compressed once and stored (and for the miss that stores it): measured
    /// in `docs/compression.md` ("Levels"), the best ratio at no more than about 35 µs of CPU
    /// per KiB, so that compressing a stored response costs a few milliseconds, once. Brotli
    /// 11 would send 11 % fewer bytes but costs 1.3 ms per KiB, which the first request would
    /// wait for (a route can still ask for it).
    pub const STORED: Levels = Levels {
        gzip: 9,
        br: 6,
        zstd: 9,
    };

    /// For a response compressed for each request (not stored): levels whose cost per KiB
    /// stays near the cost of proxying it (under 20 µs per KiB).
    pub const PER_REQUEST: Levels = Levels {
        gzip: 6,
        br: 4,
        zstd: 3,
    };

    /// The level of `coding` (0 for identity).
    pub fn of(&self, coding: Coding) -> i32 {
        match coding {
            Coding::Identity => 0,
            Coding::Gzip => self.gzip as i32,
            Coding::Br => self.br as i32,
            Coding::Zstd => self.zstd,
        }
    }
}

/// The levels etagate accepts for a coding: gzip 1–9, brotli 0–11, zstd 1–19 (20–22 need
/// windows beyond RFC 9659's 8 MiB; negative levels compress worse than gzip 1).
pub fn valid_levels(coding: Coding) -> RangeInclusive<i32> {
    match coding {
        Coding::Identity => 0..=0,
        Coding::Gzip => 1..=9,
        Coding::Br => 0..=11,
        Coding::Zstd => 1..=19,
    }
}

/// Encode `input` in `coding` at `level`, clamped to [`valid_levels`]. `Identity` copies.
/// Errors come from the compressors themselves (none is expected writing into memory).
pub fn encode(coding: Coding, level: i32, input: &[u8]) -> io::Result<Vec<u8>> {
    let r = valid_levels(coding);
    let level = level.clamp(*r.start(), *r.end());
    match coding {
        Coding::Identity => Ok(input.to_vec()),
        Coding::Gzip => {
            let out = Vec::with_capacity(input.len() / 3 + 64);
            let mut w = flate2::GzBuilder::new()
                .operating_system(255)
                .write(out, flate2::Compression::new(level as u32));
            w.write_all(input)?;
            w.finish()
        }
        Coding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: level,
                lgwin: 22,
                size_hint: input.len(),
                ..Default::default()
            };
            let mut out = Vec::with_capacity(input.len() / 3 + 64);
            brotli::BrotliCompress(&mut &input[..], &mut out, &params)?;
            Ok(out)
        }
        Coding::Zstd => zstd::bulk::compress(input, level),
    }
}

/// An encoder fed a body piece by piece, for a response compressed while it streams (one too
/// large to hold back, or one etagate does not hold back at all).
pub struct StreamEncoder(Stream);

enum Stream {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// The window of a stream's compressor: 1 MiB (brotli `lgwin` 20, zstd `windowLog` 20). A
/// stream holds its compressor while its client reads, so its memory is what bounds how many
/// can run; a smaller window costs a little ratio on large bodies only.
const STREAM_WINDOW_LOG: u32 = 20;

impl StreamEncoder {
    /// An encoder for `coding` at `level` (clamped like [`encode`]); `None` for identity.
    pub fn new(coding: Coding, level: i32) -> io::Result<Option<StreamEncoder>> {
        let r = valid_levels(coding);
        let level = level.clamp(*r.start(), *r.end());
        Ok(Some(StreamEncoder(match coding {
            Coding::Identity => return Ok(None),
            Coding::Gzip => Stream::Gzip(
                flate2::GzBuilder::new()
                    .operating_system(255)
                    .write(Vec::new(), flate2::Compression::new(level as u32)),
            ),
            Coding::Br => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: level,
                    lgwin: STREAM_WINDOW_LOG as i32,
                    ..Default::default()
                };
                Stream::Br(Box::new(brotli::CompressorWriter::with_params(
                    Vec::new(),
                    16 << 10,
                    &params,
                )))
            }
            Coding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                e.window_log(STREAM_WINDOW_LOG)?;
                Stream::Zstd(e)
            }
        })))
    }

    /// Compress one more piece; what the compressor has output so far (often nothing: it
    /// gathers a block before writing one).
    pub fn push(&mut self, piece: &[u8]) -> io::Result<Vec<u8>> {
        let out = match &mut self.0 {
            Stream::Gzip(w) => {
                w.write_all(piece)?;
                w.get_mut()
            }
            Stream::Br(w) => {
                w.write_all(piece)?;
                w.get_mut()
            }
            Stream::Zstd(w) => {
                w.write_all(piece)?;
                w.get_mut()
            }
        };
        Ok(std::mem::take(out))
    }

    /// Push out what the compressor holds (at a small cost in ratio), so that a response
    /// whose origin writes it piece by piece reaches the client piece by piece.
    pub fn flush(&mut self) -> io::Result<Vec<u8>> {
        let out = match &mut self.0 {
            Stream::Gzip(w) => {
                w.flush()?;
                w.get_mut()
            }
            Stream::Br(w) => {
                w.flush()?;
                w.get_mut()
            }
            Stream::Zstd(w) => {
                w.flush()?;
                w.get_mut()
            }
        };
        Ok(std::mem::take(out))
    }

    /// End the stream: the rest of the output.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self.0 {
            Stream::Gzip(w) => w.finish(),
            Stream::Br(w) => Ok(w.into_inner()),
            Stream::Zstd(w) => w.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::decode::{decode, Limits};

    fn page() -> Vec<u8> {
        let mut s = String::new();
        for i in 0..150 {
            s.push_str(&format!(
                "<li class=\"item\"><a href=\"/products/{i}\">Product {i}</a> <span>{}</span></li>\n",
                i * 7 % 13
            ));
        }
        s.into_bytes()
    }

    #[test]
    fn every_coding_and_level_round_trips_and_compresses() {
        let input = page();
        for coding in Coding::COMPRESSED {
            for level in valid_levels(coding) {
                let out = encode(coding, level, &input).expect("encode");
                assert!(
                    out.len() < input.len() / 3,
                    "{coding:?} {level}: {}",
                    out.len()
                );
                let back = decode(coding, &out, &Limits::DEFAULT).expect("decode");
                assert!(back == input, "{coding:?} {level}");
            }
        }
    }

    #[test]
    fn output_depends_on_input_coding_and_level_only() {
        let input = page();
        for coding in Coding::COMPRESSED {
            let level = Levels::STORED.of(coding);
            assert!(
                encode(coding, level, &input).expect("encode")
                    == encode(coding, level, &input).expect("encode"),
                "{coding:?}"
            );
        }
        let gz = encode(Coding::Gzip, 6, &input).expect("gzip");
        // magic, deflate, no flags, mtime 0, no extra flags for level 6, OS unknown
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn levels_are_clamped_and_identity_copies() {
        let input = page();
        assert!(
            encode(Coding::Gzip, 42, &input).expect("gzip")
                == encode(Coding::Gzip, 9, &input).expect("gzip")
        );
        assert!(
            encode(Coding::Zstd, 22, &input).expect("zstd")
                == encode(Coding::Zstd, 19, &input).expect("zstd")
        );
        assert!(encode(Coding::Identity, 9, &input).expect("copy") == input);
        for levels in [Levels::STORED, Levels::PER_REQUEST] {
            for c in Coding::COMPRESSED {
                assert!(valid_levels(c).contains(&levels.of(c)), "{levels:?} {c:?}");
            }
        }
    }

    #[test]
    fn streaming_gives_a_stream_that_decodes_to_the_input() {
        let input = page();
        for coding in Coding::COMPRESSED {
            let mut enc = StreamEncoder::new(coding, 5)
                .expect("new")
                .expect("an encoder");
            let mut out = Vec::new();
            for (i, piece) in input.chunks(1000).enumerate() {
                out.extend(enc.push(piece).expect("push"));
                if i % 2 == 0 {
                    let flushed = enc.flush().expect("flush");
                    assert!(!flushed.is_empty(), "{coding:?}: a flush gives output");
                    out.extend(flushed);
                }
            }
            out.extend(enc.finish().expect("finish"));
            assert!(out.len() < input.len() / 3, "{coding:?}");
            let back = decode(coding, &out, &Limits::DEFAULT).expect("decode");
            assert!(back == input, "{coding:?}");
        }
        assert!(StreamEncoder::new(Coding::Identity, 1)
            .expect("new")
            .is_none());
    }

    #[test]
    fn empty_input_encodes_to_a_valid_empty_stream() {
        for coding in Coding::COMPRESSED {
            let out = encode(coding, 1, b"").expect("encode");
            assert_eq!(decode(coding, &out, &Limits::DEFAULT).expect("decode"), b"");
        }
    }
}
