//! Writing a response too large for the memory tier (up to `cache.disk.max_object_size`) to
//! disk as it arrives, so storing a large object costs one chunk of memory, not the object.
//!
//! - The body is appended to a temporary file and hashed as it comes; its meta and head (the
//!   computed ETag, the freshness a purge may have changed) are written after it once the
//!   response is complete, and the prefix last (`format`: why the body comes first).
//! - Every byte appended is first reserved against the budget (evicting the least recently
//!   used files to make room), so files and files being written never exceed it together.
//! - The finished file is renamed into place and listed by the fill itself, under the index
//!   lock, before the fill lets go of Pingora's cache lock (so its waiters find it); a purge
//!   asked after the fill was checked (`MemMiss::finish`) is applied by the check after the
//!   commit (`MemMiss::commit_spill`).
//! - A fill that breaks off, outgrows the limit or fails to write leaves nothing: the
//!   temporary file is removed when the [`Spill`] is dropped (and at recovery after a crash).

use super::format::{self, Meta, PREFIX_LEN};
use super::{body, skipped, DiskStore, Doomed, Variant};
use crate::cache::entry::Entry;
use crate::metrics::METRICS;
use pingora_cache::key::HashBinary;
use pingora_http::ResponseHeader;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temporary names unique within the process; the process id, across the two processes
/// of a binary upgrade (the old one may still be finishing a fill when the new one takes over).
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// An entry file being written under a temporary name beside its place: whole
/// ([`FileWriter::write_whole`]) or section by section (prefix room, body, then
/// [`FileWriter::finish`]). Removed on drop unless renamed into place.
pub(super) struct FileWriter {
    tmp: PathBuf,
    file: File,
    sum: blake3::Hasher,
    /// Body bytes appended.
    written: u64,
    /// Bytes in the file.
    size: u64,
    /// Remove the temporary file on drop (until it is renamed).
    armed: bool,
}

/// A name beside `path` no other file has: hidden, ending in `suffix` (not `.e`, so recovery
/// removes what a crash leaves under it).
pub(super) fn aside(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.{suffix}", std::process::id()))
}

impl FileWriter {
    /// An empty temporary file for the entry at `path`.
    pub(super) fn create(path: &Path) -> std::io::Result<FileWriter> {
        let dir = path.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
        fs::create_dir_all(dir)?;
        let tmp = aside(path, "tmp");
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        Ok(FileWriter {
            tmp,
            file,
            sum: blake3::Hasher::new(),
            written: 0,
            size: 0,
            armed: true,
        })
    }

    /// The whole file at once (an entry encoded in memory).
    pub(super) fn write_whole(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Room for the prefix, written by [`FileWriter::finish`]; the body follows.
    fn begin_body(&mut self) -> std::io::Result<()> {
        self.write_whole(&[0u8; PREFIX_LEN])
    }

    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.file.write_all(data)?;
        self.sum.update(data);
        self.written += data.len() as u64;
        self.size += data.len() as u64;
        Ok(())
    }

    /// Write meta, head and checksum after the body, then the prefix: the file's length.
    fn finish(&mut self, meta: &Meta, head: &ResponseHeader) -> std::io::Result<u64> {
        let (prefix, tail) = format::tail(meta, head, self.written, self.sum.clone());
        self.file.write_all(&tail)?;
        self.file.write_all_at(&prefix, 0)?;
        self.size += tail.len() as u64;
        Ok(self.size)
    }

    /// Bytes in the file.
    pub(super) fn len(&self) -> u64 {
        self.size
    }

    /// Rename the finished file to `path` (under the index lock: see `DiskStore::list`).
    pub(super) fn rename_to(mut self, path: &Path) -> std::io::Result<()> {
        fs::rename(&self.tmp, path)?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A response being written to disk as it arrives. Blocking: call it off the async threads.
pub struct Spill {
    store: &'static DiskStore,
    /// Taken when the file is renamed into place.
    out: Option<FileWriter>,
    /// Bytes of the budget this file holds (given back on drop unless committed).
    reserved: u64,
    max: u64,
}

impl DiskStore {
    /// Begin writing a response for `primary`/`variance` as it arrives. `None` when the store
    /// is not open here or the file cannot be created (counted, logged).
    pub fn spill(
        &'static self,
        primary: &HashBinary,
        variance: &Option<HashBinary>,
    ) -> Option<Spill> {
        if !self.is_open() {
            return None;
        }
        let path = self.path_of(primary, variance);
        let created = FileWriter::create(&path).and_then(|mut out| {
            out.begin_body()?;
            Ok(out)
        });
        match created {
            Ok(out) => Some(Spill {
                store: self,
                out: Some(out),
                reserved: 0,
                max: self.max_object.load(Ordering::Acquire) as u64,
            }),
            Err(e) => {
                METRICS.disk.write_errors.inc();
                self.log_write_error(&path, &e);
                None
            }
        }
    }

    /// Largest response the store keeps.
    pub fn max_object(&self) -> usize {
        self.max_object.load(Ordering::Acquire)
    }

    /// The entry file at `path` rewritten with its response marked stale (a soft purge), in
    /// chunks whatever its size, to be renamed over it. `Ok(None)`: it already was.
    pub(super) fn rewrite_stale(
        &self,
        path: &Path,
        now: std::time::SystemTime,
    ) -> Result<Option<FileWriter>, String> {
        let (mut meta, head, b, _) = body::open(path, None)?;
        if meta.freshness.invalidated {
            return Ok(None);
        }
        meta.freshness.invalidate(now);
        let mut out = FileWriter::create(path).map_err(|e| e.to_string())?;
        out.begin_body().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; body::CHUNK];
        let mut at = 0u64;
        while at < b.len() {
            let n = (b.len() - at).min(body::CHUNK as u64) as usize;
            b.read_at(at, &mut buf[..n]).map_err(|e| e.to_string())?;
            out.append(&buf[..n]).map_err(|e| e.to_string())?;
            at += n as u64;
        }
        out.finish(&meta, &head).map_err(|e| e.to_string())?;
        Ok(Some(out))
    }
}

impl Spill {
    /// Append a piece of the body. False: the response outgrew `cache.disk.max_object_size`,
    /// the budget cannot hold it, or the write failed; give up (dropping the spill cleans up).
    pub fn append(&mut self, data: &[u8]) -> bool {
        if self.len() + data.len() as u64 > self.max {
            skipped("too_large");
            return false;
        }
        if !self.reserve(data.len() as u64) {
            return false;
        }
        match self.out.as_mut().map(|o| o.append(data)) {
            Some(Ok(())) => true,
            Some(Err(e)) => self.failed(&e),
            None => false,
        }
    }

    /// Bytes of the body appended so far.
    pub fn len(&self) -> u64 {
        self.out.as_ref().map_or(0, |o| o.written)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Complete the file for `entry` (its header and metadata; its own body is not used),
    /// rename it into place and list it, at once: requests that waited on the cache lock for
    /// this fill find it when the lock is released. False when that failed, or when the store
    /// was handed over meanwhile.
    ///
    /// Not through the writer thread's queue: a purge that comes after the fill's own check is
    /// then applied to it by the check after the commit (`MemMiss::commit_spill`), whichever
    /// of the two reaches the disk first.
    pub fn commit(mut self, primary: HashBinary, entry: &Entry) -> bool {
        let meta = Meta::of(primary, entry);
        let body = self.len();
        let len = match self.out.as_mut().map(|o| o.finish(&meta, &entry.header)) {
            Some(Ok(len)) => len,
            Some(Err(e)) => return self.failed(&e),
            None => return false,
        };
        if !self.reserve(len.saturating_sub(self.reserved)) {
            return false;
        }
        let Some(out) = self.out.take() else {
            return false;
        };
        let store = self.store;
        let mut doomed = Doomed::default();
        let mut ix = store.index.lock();
        if !store.is_open() {
            return false;
        }
        // The reservation becomes the file's bytes in the same hold of the lock, so no other
        // fill can take the room in between.
        ix.reserved = ix
            .reserved
            .saturating_sub(std::mem::take(&mut self.reserved));
        let listed = store.list(
            &mut ix,
            primary,
            Variant::of(entry, len, body),
            out,
            &mut doomed,
        );
        let (objects, total) = (ix.objects, ix.bytes);
        drop(ix);
        doomed.unlink();
        store.publish(objects, total);
        if listed {
            METRICS.disk.spilled.inc();
        }
        listed
    }

    /// Hold `n` more bytes of the budget, evicting to make room. False when even an empty
    /// store could not hold the file (other large fills in flight hold the rest).
    /// False too once the store was let go (a binary upgrade): its files are the next
    /// process's to evict.
    fn reserve(&mut self, n: u64) -> bool {
        let budget = self.store.budget.load(Ordering::Acquire);
        let mut ix = self.store.index.lock();
        if !self.store.is_open() {
            return false;
        }
        if ix.reserved + n > budget {
            drop(ix);
            skipped("too_large");
            return false;
        }
        ix.reserved += n;
        self.reserved += n;
        let mut doomed = Doomed::default();
        self.store.evict_to(&mut ix, budget, &mut doomed);
        let (objects, total) = (ix.objects, ix.bytes);
        drop(ix);
        doomed.unlink();
        self.store.publish(objects, total);
        true
    }

    fn failed(&self, e: &std::io::Error) -> bool {
        METRICS.disk.write_errors.inc();
        let tmp = self.out.as_ref().map(|o| o.tmp.as_path());
        self.store
            .log_write_error(tmp.unwrap_or(self.store.dir.as_path()), e);
        false
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.store.unreserve(self.reserved);
    }
}

impl DiskStore {
    pub(super) fn unreserve(&self, n: u64) {
        if n > 0 {
            let mut ix = self.index.lock();
            ix.reserved = ix.reserved.saturating_sub(n);
        }
    }
}
