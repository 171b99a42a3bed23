//! Disk tier entry files (`etagate::cache::disk::format`): what a disk (or someone with access
//! to it) can hand back is untrusted input.
//!
//! Asserts:
//! - decoding any bytes returns an entry or an error, never a panic or an allocation beyond
//!   the input's own size;
//! - whatever decodes re-encodes to bytes that decode to the same meta, head and body (the
//!   format round-trips);
//! - any single flipped byte of a valid file is an error (the checksum covers every byte).
#![no_main]

use etagate::cache::disk::entry_from;
use etagate::cache::disk::format::{decode, decode_meta, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_meta(data);
    let Ok((meta, head, body)) = decode(data) else {
        return;
    };
    let primary = meta.primary;
    let entry = entry_from(meta.clone(), head, body.clone(), 1);
    let again = encode(primary, &entry);
    let (meta2, head2, body2) = decode(&again).expect("a re-encoded entry decodes");
    assert_eq!(meta2, meta);
    assert_eq!(head2.headers, entry.header.headers);
    assert_eq!(body2, body);
    let mut flipped = again.clone();
    let at = data.len() % flipped.len();
    flipped[at] ^= 0x20;
    assert!(decode(&flipped).is_err(), "a flipped byte at {at} decoded");
});
