//! The memory a bounded decoding (`etagate::http::decode`) takes, measured: a counting
//! allocator records the peak of live bytes allocated by this thread while a compression bomb
//! (10 MiB of zeros) is refused. Its own binary, because the allocator is process-wide.
//!
//! What it sees: the output buffer and the allocations of the Rust decoders (brotli) and of
//! zlib-ng (flate2 hands it Rust's allocator). zstd's C library allocates with `malloc`, which
//! this does not see; its window is bounded by the 8 MiB RFC 9659 sets, which `decode` enforces.

use etagate::http::coding::Coding;
use etagate::http::decode::{decode, decoded_hash, DecodeError, Limits};
use etagate::http::encode::encode;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn add(n: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn sub(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        sub(layout.size());
        add(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The peak of live bytes `f` adds on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

const MIB: usize = 1 << 20;

/// What a decoder itself may hold besides the output: gzip its 32 KiB window and buffers;
/// brotli its ring buffer, which takes the stream's window (4 MiB at the encoder's default
/// `lgwin` 22, which `encode` uses; a stream may declare up to 16 MiB, RFC 7932) as soon as the
/// output passes a few blocks, plus its tables; zstd's C library allocates with `malloc`, which
/// this allocator does not see.
fn decoder_allowance(coding: Coding) -> usize {
    match coding {
        Coding::Br => 4 * MIB + (512 << 10),
        _ => 256 << 10,
    }
}

#[test]
fn a_bomb_is_refused_within_the_limit_plus_the_decoder_window() {
    let zeros = vec![0u8; 10 * MIB];
    let limits = Limits {
        max_output: MIB,
        max_ratio: usize::MAX,
        ratio_floor: 0,
    };
    for coding in [Coding::Gzip, Coding::Br, Coding::Zstd] {
        let decoder = decoder_allowance(coding);
        let bomb = encode(coding, 9, &zeros).expect("encode");
        let (r, peak) = peak_of(|| decode(coding, &bomb, &limits).map(|v| v.len()));
        assert_eq!(r, Err(DecodeError::TooLarge), "{coding:?}");
        println!("{coding:?}: decode peak {} KiB", peak >> 10);
        assert!(peak <= MIB + decoder, "{coding:?}: {peak} bytes");
        let (r, peak) = peak_of(|| decoded_hash(coding, &bomb, &limits));
        assert_eq!(r, Err(DecodeError::TooLarge), "{coding:?}");
        println!("{coding:?}: decoded_hash peak {} KiB", peak >> 10);
        assert!(peak <= decoder, "{coding:?}: {peak} bytes");
    }
}

#[test]
fn the_default_limits_refuse_a_bomb_early() {
    let zeros = vec![0u8; 10 * MIB];
    for coding in [Coding::Gzip, Coding::Br, Coding::Zstd] {
        let bomb = encode(coding, 9, &zeros).expect("encode");
        let (r, peak) = peak_of(|| decode(coding, &bomb, &Limits::DEFAULT).map(|v| v.len()));
        assert_eq!(r, Err(DecodeError::TooExpanded), "{coding:?}");
        println!(
            "{coding:?}: {} bytes of bomb, default-limits peak {} KiB",
            bomb.len(),
            peak >> 10
        );
        assert!(
            peak <= 2 * MIB + decoder_allowance(coding) + Limits::DEFAULT.ratio_floor,
            "{coding:?}: {peak} bytes"
        );
    }
}
