//! Encoding a complete identity body in one of etagate's codings, at a level
//! ([`encode`]), and the levels a route uses ([`Levels`]).
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
    /// For a response compressed once and stored: measured in `docs/performance-notes.md`
    /// ("Compression levels"), the highest levels whose cost stays small next to fetching
    /// the response at all.
    pub const STORED: Levels = Levels {
        gzip: 9,
        br: 11,
        zstd: 19,
    };

    /// For a response compressed for each request (not stored): levels whose cost per KiB
    /// stays near the cost of proxying it.
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
    fn empty_input_encodes_to_a_valid_empty_stream() {
        for coding in Coding::COMPRESSED {
            let out = encode(coding, 1, b"").expect("encode");
            assert_eq!(decode(coding, &out, &Limits::DEFAULT).expect("decode"), b"");
        }
    }
}
