//! The body of an entry too large for the memory tier, read from its file in chunks as it is
//! sent, so a hit on a large object costs one chunk of memory, not the object.
//!
//! The whole file is verified (its checksum) before the first byte goes out the first time this
//! process reads it: a damaged entry must be a miss, and once a response's header is sent, a
//! body found corrupt halfway could only be cut off. The index remembers which file (inode) was
//! verified, so later hits (a range, a HEAD, a 304) do not read the whole object again to
//! check it; they check its length. Entry files are never changed in place (a rewrite is a new
//! file, a new inode, renamed over the old one; an eviction an unlink), so a file verified once
//! holds what was verified unless the device itself corrupts it while the process runs, which
//! no per-read check of a large object could afford to catch either. After a restart, every
//! file is verified again on its first read.

use super::format::{self, FormatError, Meta, CHECKSUM_LEN, PREFIX_LEN};
use bytes::Bytes;
use pingora_http::ResponseHeader;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Bytes read (and sent) at a time.
pub const CHUNK: usize = 256 << 10;

/// A verified body in an open entry file.
#[derive(Clone)]
pub struct FileBody {
    file: Arc<File>,
    len: u64,
}

impl FileBody {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fill `buf` from the body at `at` (blocking).
    pub fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if at
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(std::io::Error::other("read past the body"));
        }
        self.file.read_exact_at(buf, PREFIX_LEN as u64 + at)
    }

    /// The next piece of the body to send from `at`, up to `end` (at most [`CHUNK`] bytes).
    pub async fn chunk(&self, at: u64, end: u64) -> pingora_error::Result<Bytes> {
        let n = end.saturating_sub(at).min(CHUNK as u64) as usize;
        self.read(at, n).await.map_err(|e| {
            pingora_error::Error::because(
                pingora_error::ErrorType::ReadError,
                "reading a stored body from disk",
                e,
            )
        })
    }

    /// `n` bytes of the body from `at` (within it). Read on this thread when the page cache
    /// holds them, else on the blocking pool, so a cold read never stalls other requests.
    pub async fn read(&self, at: u64, n: usize) -> std::io::Result<Bytes> {
        if at.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return Err(std::io::Error::other("read past the body"));
        }
        let pos = PREFIX_LEN as u64 + at;
        let mut buf = vec![0u8; n];
        if read_cached(&self.file, &mut buf, pos) {
            return Ok(Bytes::from(buf));
        }
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            file.read_exact_at(&mut buf, pos)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// `preadv2(RWF_NOWAIT)` until `buf` is full; false when the page cache does not hold it all.
pub(super) fn read_cached(file: &File, buf: &mut [u8], pos: u64) -> bool {
    let mut at = 0usize;
    while at < buf.len() {
        let mut bufs = [std::io::IoSliceMut::new(&mut buf[at..])];
        match rustix::io::preadv2(
            file,
            &mut bufs,
            pos + at as u64,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(n) if n > 0 => at += n,
            _ => return false,
        }
    }
    true
}

/// An entry file opened for a hit: its meta, head, body and inode.
pub type Opened = (Meta, ResponseHeader, FileBody, u64);

/// Open the entry file at `path` and verify it whole (in chunks), unless it is the file (inode)
/// `verified` names: its meta, head, body and inode. Blocking.
pub fn open(path: &Path, verified: Option<u64>) -> Result<Opened, String> {
    use std::os::unix::fs::MetadataExt;
    let file = File::open(path).map_err(|e| e.to_string())?;
    let md = file.metadata().map_err(|e| e.to_string())?;
    let (len, ino) = (md.len(), md.ino());
    let mut prefix = [0u8; PREFIX_LEN];
    file.read_exact_at(&mut prefix, 0)
        .map_err(|_| FormatError::Short.to_string())?;
    let (m, h, b) = format::lengths(&prefix).map_err(|e| e.to_string())?;
    let expected = format::file_len(m, h, b);
    if len != expected {
        let e = if len < expected {
            FormatError::Short
        } else {
            FormatError::Lengths
        };
        return Err(e.to_string());
    }
    let mut tail = vec![0u8; m + h + CHECKSUM_LEN];
    file.read_exact_at(&mut tail, format::meta_offset(b))
        .map_err(|e| e.to_string())?;
    if verified != Some(ino) {
        let mut sum = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let end = len - CHECKSUM_LEN as u64;
        let mut at = PREFIX_LEN as u64;
        while at < end {
            let n = (end - at).min(CHUNK as u64) as usize;
            file.read_exact_at(&mut buf[..n], at)
                .map_err(|e| e.to_string())?;
            sum.update(&buf[..n]);
            at += n as u64;
        }
        sum.update(&prefix);
        if sum.finalize().as_bytes() != &tail[m + h..] {
            return Err(FormatError::Checksum.to_string());
        }
    }
    let (meta, head) = format::decode_tail(&tail, m, h).map_err(|e| e.to_string())?;
    let body = FileBody {
        file: Arc::new(file),
        len: b,
    };
    Ok((meta, head, body, ino))
}
