//! Micro-benchmarks of the per-request work: content ETags by body size, cache keys and
//! variance, precondition evaluation, If-None-Match parsing, metric updates, and a stored-entry
//! lookup, and compression by coding and level. Run with `cargo bench --bench hot_path`; each
//! reports throughput.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etagate::cache::entry::Entry;
use etagate::cache::key::PrimaryKey;
use etagate::cache::storage::{Found, MemStore};
use etagate::http::etag::{content_etag, TagList};
use etagate::http::freshness::Freshness;
use etagate::http::preconditions::{evaluate, Validators};
use etagate::http::vary::{variance, VarySpec};
use etagate::metrics::{CacheOutcome, METRICS};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn etag_hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("content_etag");
    for size in [1 << 10, 16 << 10, 256 << 10, 1 << 20] {
        let body = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter(|| content_etag(&blake3::hash(black_box(body))))
        });
    }
    g.finish();
}

fn keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_key");
    g.throughput(Throughput::Elements(1));
    g.bench_function("primary", |b| {
        b.iter(|| {
            PrimaryKey::new(
                black_box("https"),
                black_box("Shop.Example.com:443"),
                black_box("/products/1234?page=2&sort=price"),
            )
        })
    });
    let mut req = HeaderMap::new();
    req.insert(
        "accept-encoding",
        HeaderValue::from_static("gzip, deflate, br, zstd"),
    );
    req.insert(
        "accept-language",
        HeaderValue::from_static("en-GB,en;q=0.9,de;q=0.8"),
    );
    let names = [
        HeaderName::from_static("accept-encoding"),
        HeaderName::from_static("accept-language"),
    ];
    g.bench_function("variance_2_headers", |b| {
        b.iter(|| variance(black_box(&names), black_box(&req)))
    });
    g.finish();
}

fn preconditions(c: &mut Criterion) {
    let mut g = c.benchmark_group("preconditions");
    g.throughput(Throughput::Elements(1));
    let mut resp = HeaderMap::new();
    resp.insert(
        "etag",
        HeaderValue::from_static("\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg\""),
    );
    resp.insert(
        "last-modified",
        HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
    );
    let mut inm = HeaderMap::new();
    inm.insert(
        "if-none-match",
        HeaderValue::from_static("\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg\""),
    );
    let mut ims = HeaderMap::new();
    ims.insert(
        "if-modified-since",
        HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
    );
    let plain = HeaderMap::new();
    for (name, req) in [
        ("unconditional", &plain),
        ("if_none_match", &inm),
        ("if_modified_since", &ims),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                evaluate(
                    &Method::GET,
                    black_box(req),
                    &Validators::of(black_box(&resp)),
                )
            })
        });
    }
    let list =
        "\"a1\", \"b2\", W/\"c3\", \"d4\", \"e5\", \"f6\", \"g7\", \"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg\"";
    g.bench_function("parse_if_none_match_list_8", |b| {
        b.iter(|| TagList::parse([black_box(list.as_bytes())]))
    });
    g.finish();
}

fn metric_updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(1));
    let route = METRICS.route("bench");
    g.bench_function("request_and_cache_outcome", |b| {
        b.iter(|| {
            route.request(black_box(200));
            route.cache(black_box(CacheOutcome::Hit));
            route.duration.observe(black_box(0.00025));
        })
    });
    g.finish();
}

fn stored_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("storage");
    g.throughput(Throughput::Elements(1));
    let store = MemStore::new(64 << 20, 1 << 20);
    let f = Freshness::plain(Duration::from_secs(3600), SystemTime::now());
    let keys: Vec<PrimaryKey> = (0..1000)
        .map(|i| PrimaryKey::new("http", "example.com", &format!("/item/{i}")))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let h = pingora_http::ResponseHeader::build(200, None).expect("header");
        let e = Entry::new(
            i as u64,
            h,
            bytes::Bytes::from(vec![1u8; 1024]),
            f,
            None,
            VarySpec::None,
            false,
        );
        store.insert(k.hash, Arc::new(e));
    }
    let req = HeaderMap::new();
    let mut i = 0;
    g.bench_function("find_hit", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            matches!(store.find(black_box(&keys[i].hash), &req), Found::Hit(_))
        })
    });
    g.finish();
}

/// Compression levels by cost and ratio, on real text (this repository's documentation and
/// sources, more than 256 KiB of it, so no input repeats): the measurements behind the default
/// levels (`docs/compression.md`). Each level's ratio is printed once before it is timed.
fn compression(c: &mut Criterion) {
    use etagate::http::coding::Coding;
    use etagate::http::encode::encode;
    let mut corpus = Vec::new();
    for (dir, ext) in [("docs", "md"), ("src/http", "rs"), ("src/proxy", "rs")] {
        let dir = format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("a source directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        files.sort();
        for f in files {
            corpus.extend(std::fs::read(f).expect("read a file"));
        }
    }
    assert!(corpus.len() >= 256 << 10, "{} bytes of text", corpus.len());
    let levels: [(Coding, &[i32]); 3] = [
        (Coding::Gzip, &[1, 6, 9]),
        (Coding::Br, &[4, 6, 9, 11]),
        (Coding::Zstd, &[3, 9, 19]),
    ];
    let mut g = c.benchmark_group("compress");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(300));
    for size in [16usize << 10, 256 << 10] {
        let input = corpus
            .iter()
            .copied()
            .cycle()
            .take(size)
            .collect::<Vec<u8>>();
        g.throughput(Throughput::Bytes(size as u64));
        for (coding, ls) in levels {
            for &level in ls {
                let out = encode(coding, level, &input).expect("encode");
                eprintln!(
                    "compress {}-{level} {} KiB: {} bytes, ratio {:.2}",
                    coding.token(),
                    size >> 10,
                    out.len(),
                    size as f64 / out.len() as f64
                );
                let id = BenchmarkId::new(format!("{}-{level}", coding.token()), size >> 10);
                g.bench_with_input(id, &input, |b, input| {
                    b.iter(|| encode(coding, level, black_box(input)))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    compression,
    etag_hashing,
    keys,
    preconditions,
    metric_updates,
    stored_lookup
);
criterion_main!(benches);
