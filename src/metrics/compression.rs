//! Metrics of compression (`routes[].compression`): what was sent in which coding, and what
//! compressing cost and saved.

use super::counter_vec;
use crate::http::coding::Coding;
use prometheus::{IntCounter, Registry};

/// Why a body was compressed, which decides its level and whether it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A stored response, compressed once and kept beside it.
    Stored,
    /// A complete response that is not stored, compressed for one request.
    PerRequest,
    /// A response compressed while it streams to the client.
    Streamed,
}

impl Compression {
    const ALL: [Compression; 3] = [
        Compression::Stored,
        Compression::PerRequest,
        Compression::Streamed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Compression::Stored => "stored",
            Compression::PerRequest => "per_request",
            Compression::Streamed => "streamed",
        }
    }
}

const CODINGS: [Coding; 4] = [Coding::Identity, Coding::Gzip, Coding::Br, Coding::Zstd];

fn slot(c: Coding) -> usize {
    match c {
        Coding::Identity => 0,
        Coding::Gzip => 1,
        Coding::Br => 2,
        Coding::Zstd => 3,
    }
}

pub struct CompressionMetrics {
    responses: [IntCounter; 4],
    skipped: [IntCounter; 4],
    compressions: [[IntCounter; 3]; 4],
    input: [IntCounter; 4],
    output: [IntCounter; 4],
}

impl CompressionMetrics {
    pub(super) fn new(r: &Registry) -> CompressionMetrics {
        let responses = counter_vec(
            r,
            "etagate_compressible_responses_total",
            "Responses etagate may compress (compression on, a compressible type, large enough) sent with a body, by the content-coding they were sent in (identity: the client accepts none of the route's codings).",
            &["coding"],
        );
        let compressions = counter_vec(
            r,
            "etagate_compressions_total",
            "Bodies compressed, by coding and kind: stored (once per stored response and coding, then kept), per_request (a complete response not stored), streamed (compressed while sent).",
            &["coding", "kind"],
        );
        let input = counter_vec(
            r,
            "etagate_compression_input_bytes_total",
            "Bytes fed to compressors, by coding.",
            &["coding"],
        );
        let output = counter_vec(
            r,
            "etagate_compression_output_bytes_total",
            "Bytes compressors produced, by coding.",
            &["coding"],
        );
        let skipped = counter_vec(
            r,
            "etagate_compressions_skipped_total",
            "Responses sent uncompressed although the client accepted the coding, because the compressors were all busy (the 4 of the blocking pool, or the 64 stream compressors); the response goes out in identity rather than wait.",
            &["coding"],
        );
        let by = |v: &prometheus::IntCounterVec| CODINGS.map(|c| v.with_label_values(&[c.token()]));
        CompressionMetrics {
            responses: by(&responses),
            skipped: by(&skipped),
            compressions: CODINGS.map(|c| {
                Compression::ALL.map(|k| compressions.with_label_values(&[c.token(), k.as_str()]))
            }),
            input: by(&input),
            output: by(&output),
        }
    }

    /// A compressible response sent in `coding`.
    pub fn sent(&self, coding: Coding) {
        self.responses[slot(coding)].inc();
    }

    /// A body not compressed because every compressor was busy.
    pub fn skipped(&self, coding: Coding) {
        self.skipped[slot(coding)].inc();
    }

    /// A body compressed (for streams: once, at their end, with their totals).
    pub fn compressed(&self, coding: Coding, kind: Compression, input: usize, output: usize) {
        let k = Compression::ALL
            .iter()
            .position(|&x| x == kind)
            .unwrap_or(0);
        self.compressions[slot(coding)][k].inc();
        self.input[slot(coding)].inc_by(input as u64);
        self.output[slot(coding)].inc_by(output as u64);
    }
}
