//! The disk tier: every response the memory tier stores is also written here, one file per
//! response, so a restart or a binary upgrade keeps the hits. A request the memory tier misses
//! finds the response here and promotes it back into memory.
//!
//! - [`format`]: the file format (checksummed, versioned).
//! - [`body`]: reading a body too large to read whole, in chunks, after verifying it.
//! - [`spill`]: writing a response too large for the memory tier as it arrives.
//!
//! Design (why plain files and not foyer: `docs/disk-cache.md`):
//! - **Files.** `<path>/v1/<2 hex>/<primary hex>-<variance hex>.e`, written to a temporary name
//!   and renamed into place, so a reader sees a whole file or the previous one. A crash can
//!   leave a temporary file (removed at recovery) or, on power loss, a torn file, which the
//!   checksum turns into a miss.
//! - **One writer.** Writes, removals and soft purges go through one queue to one thread, in
//!   the order they were asked for: a purge never overtakes the fill it follows, so a purged
//!   response cannot be written back. Writes beyond [`MAX_QUEUED_WRITE_BYTES`] are dropped
//!   (counted); purges are never dropped.
//! - **Index in memory.** Per primary key its variants on disk: size, `Vary`, tags and URL
//!   (purge by tag and prefix walk it). Recovery rebuilds it from each file's first bytes.
//! - **Budget.** The sum of the files' sizes (metadata, head, body and checksum) stays within
//!   `cache.disk.budget`: the least recently used files are removed first (a write, a hit read
//!   from disk and, at most every 10 s, a hit served from memory are uses).
//! - **One process at a time.** The process that holds an exclusive lock on `<path>/LOCK` owns
//!   the store. A new process (binary upgrade) that finds it locked serves from memory and the
//!   origin, and takes the store when the old process releases it on SIGQUIT.

pub mod body;
pub mod format;
pub mod spill;

use crate::cache::entry::Entry;
use crate::cache::storage::PurgeMode;
use crate::http::vary::{variance, VarySpec};
use crate::metrics::METRICS;
use bytes::Bytes;
use format::Meta;
use http::HeaderMap;
use parking_lot::Mutex;
use pingora_cache::key::HashBinary;
use pingora_http::ResponseHeader;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Bytes of responses queued for writing at most; beyond it new writes are dropped.
const MAX_QUEUED_WRITE_BYTES: usize = 64 << 20;
/// Files removed per hold of the index lock by a purge of many.
const REMOVAL_BATCH: usize = 256;
/// How often a process waiting for the store (binary upgrade) tries to take it.
const LOCK_RETRY: Duration = Duration::from_millis(200);
/// Purges and invalidations kept for the store while it is not yet open (recovering, or held
/// by the process being upgraded); past this the store is emptied when it opens.
const MAX_JOBS_BEFORE_OPEN: usize = 100_000;
/// A repeated write error is logged at most this often.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One response on disk, as the index knows it.
#[derive(Debug, Clone)]
struct Variant {
    variance: Option<HashBinary>,
    vary: VarySpec,
    /// Of the file, and of the body in it.
    bytes: u64,
    body: u64,
    /// The file (inode) this process has verified whole, for a large body: its later hits
    /// check its length, not its checksum (`body`).
    verified: Option<u64>,
    /// Which file this is: set when it is listed or rewritten, unchanged by hits (unlike
    /// `seq`), so a purge acts only on the file it selected.
    generation: u64,
    seq: u64,
    tags: Vec<String>,
    url: Option<String>,
}

impl Variant {
    fn of(entry: &Entry, bytes: u64, body: u64) -> Variant {
        Variant {
            variance: entry.variance,
            vary: entry.vary.clone(),
            bytes,
            body,
            verified: None,
            generation: 0,
            seq: 0,
            tags: entry.tags.iter().map(|t| t.to_string()).collect(),
            url: entry.url.as_deref().map(str::to_string),
        }
    }
}

/// Entry files taken out of the index, moved aside under the index lock and unlinked after it
/// is released. A rename is quick whatever the file's size, and while the lock is held nothing
/// can be renamed into the place it clears; unlinking a large file can take long, and a path
/// unlinked after the lock is released could by then name a file just written. Moved-aside
/// files left by a crash are removed at recovery (they do not end in `.e`).
#[derive(Default)]
struct Doomed(Vec<PathBuf>);

impl Doomed {
    /// Under the index lock.
    fn take(&mut self, path: PathBuf) {
        let aside = spill::aside(&path, "gone");
        if fs::rename(&path, &aside).is_ok() {
            self.0.push(aside);
        }
    }

    /// After the index lock is released. A directory in an entry's place (damage) goes too.
    fn unlink(&mut self) {
        for p in self.0.drain(..) {
            if fs::remove_file(&p).is_err() {
                let _ = fs::remove_dir_all(&p);
            }
        }
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// The body of a response found on disk.
pub enum DiskBody {
    /// Read whole and verified: small enough to promote to memory.
    Whole(Bytes),
    /// Verified and open: read in chunks as it is sent.
    Streamed(body::FileBody),
}

#[derive(Default)]
struct Index {
    keys: HashMap<HashBinary, Vec<Variant>>,
    /// Use order (written or read for a hit), for eviction: (seq, key, variance). Entries whose
    /// seq no longer matches (used since, rewritten or removed) are skipped.
    order: VecDeque<(u64, HashBinary, Option<HashBinary>)>,
    bytes: u64,
    objects: usize,
    seq: u64,
    /// Bytes of responses being written as they arrive ([`spill`]): counted against the budget
    /// before they reach the disk, so files and files-to-be never exceed it together.
    reserved: u64,
}

enum Job {
    Write(HashBinary, Arc<Entry>),
    RemoveKey(HashBinary),
    /// Every purge job queued before this one was for a purge of the memory tier's epoch at
    /// most this: once it is reached, they are all applied to the files.
    Applied(u64),
    Tag(String, PurgeMode),
    Prefix(String, PurgeMode),
    SoftKey(HashBinary),
    /// One response, hard (removed) or soft (marked stale).
    Variant(HashBinary, Option<HashBinary>, PurgeMode),
    /// Remove everything: purges were lost while the store was not open.
    Clear,
    /// Evict down to a (lowered) budget.
    Trim,
    /// Answer once every job before it is done.
    #[cfg(test)]
    Flush(mpsc::Sender<()>),
}

/// The settings a reload may change.
pub struct Limits {
    pub budget: u64,
    pub max_object: usize,
}

pub struct DiskStore {
    dir: PathBuf,
    budget: AtomicU64,
    max_object: AtomicUsize,
    index: Mutex<Index>,
    /// This process holds the store (lock taken, index recovered).
    open: AtomicBool,
    /// This process has handed the store over: never take it again.
    released: AtomicBool,
    started: AtomicBool,
    lock: Mutex<Option<File>>,
    /// Open from the start, so purges that arrive before the store opens wait for the writer.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    receiver: Mutex<Option<mpsc::Receiver<Job>>>,
    /// Jobs queued before the store opened; past [`MAX_JOBS_BEFORE_OPEN`] they were lost.
    jobs_before_open: AtomicUsize,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    queued_bytes: AtomicUsize,
    /// See [`DiskStore::purges_applied`].
    applied: AtomicU64,
    last_error_log: Mutex<Option<Instant>>,
}

/// Count a response not written (`too_large`, `queue_full`).
fn skipped(reason: &str) {
    METRICS
        .disk
        .writes_skipped
        .with_label_values(&[reason])
        .inc();
}

fn push_hex(out: &mut String, b: &[u8]) {
    use std::fmt::Write;
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
}

impl DiskStore {
    /// A store over `dir` (which exists and is writable: checked when the config was
    /// instantiated). Nothing is read until [`DiskStore::start`].
    pub fn new(dir: PathBuf, limits: Limits) -> DiskStore {
        METRICS.disk.budget_bytes.set(limits.budget as i64);
        let (tx, rx) = mpsc::channel();
        DiskStore {
            dir,
            budget: AtomicU64::new(limits.budget),
            max_object: AtomicUsize::new(limits.max_object),
            index: Mutex::new(Index::default()),
            open: AtomicBool::new(false),
            released: AtomicBool::new(false),
            started: AtomicBool::new(false),
            lock: Mutex::new(None),
            jobs: Mutex::new(Some(tx)),
            receiver: Mutex::new(Some(rx)),
            jobs_before_open: AtomicUsize::new(0),
            writer: Mutex::new(None),
            queued_bytes: AtomicUsize::new(0),
            applied: AtomicU64::new(0),
            last_error_log: Mutex::new(None),
        }
    }

    pub fn set_limits(&self, limits: Limits) {
        self.budget.store(limits.budget, Ordering::Release);
        self.max_object.store(limits.max_object, Ordering::Release);
        METRICS.disk.budget_bytes.set(limits.budget as i64);
        self.send(Job::Trim);
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn path_of(&self, primary: &HashBinary, variance: &Option<HashBinary>) -> PathBuf {
        let mut name = String::with_capacity(67);
        push_hex(&mut name, primary);
        name.push('-');
        match variance {
            Some(v) => push_hex(&mut name, v),
            None => name.push_str(&"0".repeat(32)),
        }
        name.push_str(".e");
        self.dir.join("v1").join(&name[..2]).join(name)
    }

    /// Take the store (waiting in the background while another process holds it), recover
    /// its index and start the writer. Returns at once; only the first call does anything.
    pub fn start(&'static self) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("etagate disk open".to_string())
            .spawn(move || {
                let mut waited = false;
                loop {
                    if self.released.load(Ordering::Acquire) {
                        return;
                    }
                    match self.try_lock() {
                        Ok(true) => break,
                        Ok(false) => {
                            if !waited {
                                log::info!(
                                    "disk cache {}: held by another process (a binary upgrade?); serving from memory and the origin until it is released",
                                    self.dir.display()
                                );
                                waited = true;
                            }
                            std::thread::sleep(LOCK_RETRY);
                        }
                        Err(e) => {
                            log::error!(
                                "disk cache {}: cannot lock {}: {e}; running without the disk tier",
                                self.dir.display(),
                                self.dir.join("LOCK").display()
                            );
                            return;
                        }
                    }
                }
                self.recover();
                // Under the jobs lock: a release that came during recovery has taken the
                // sender, and this process must not start writing after it let go.
                let jobs = self.jobs.lock();
                let rx = self.receiver.lock().take();
                let (Some(tx), Some(rx)) = (jobs.as_ref(), rx) else {
                    if let Some(f) = self.lock.lock().take() {
                        let _ = f.unlock();
                    }
                    return;
                };
                if self.jobs_before_open.load(Ordering::Acquire) > MAX_JOBS_BEFORE_OPEN {
                    log::warn!(
                        "disk cache {}: more than {MAX_JOBS_BEFORE_OPEN} purges arrived before the store opened; emptying it rather than serving what they removed",
                        self.dir.display()
                    );
                    let _ = tx.send(Job::Clear);
                }
                match std::thread::Builder::new()
                    .name("etagate disk writer".to_string())
                    .spawn(move || self.run_writer(rx))
                {
                    Ok(h) => *self.writer.lock() = Some(h),
                    Err(e) => {
                        log::error!("disk cache: cannot start the writer: {e}; running without the disk tier");
                        return;
                    }
                }
                self.open.store(true, Ordering::Release);
                METRICS.disk.open.set(1);
                drop(jobs);
            });
        if let Err(e) = spawned {
            log::error!("disk cache: cannot start: {e}; running without the disk tier");
        }
    }

    fn try_lock(&self) -> std::io::Result<bool> {
        fs::create_dir_all(self.dir.join("v1"))?;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("LOCK"))?;
        match f.try_lock() {
            Ok(()) => {
                *self.lock.lock() = Some(f);
                Ok(true)
            }
            Err(fs::TryLockError::WouldBlock) => Ok(false),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Hand the store over (SIGQUIT: a new process takes it) or close it (shutdown): finish
    /// the queued jobs, stop writing, release the lock. Blocks until the writer is done.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            // Under the index lock: a fill that checked the store open under it finishes
            // listing before this returns, and none starts after.
            let _ix = self.index.lock();
            self.open.store(false, Ordering::Release);
        }
        METRICS.disk.open.set(0);
        // Dropping the sender ends the writer once the queue is empty.
        self.jobs.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
        if let Some(f) = self.lock.lock().take() {
            let _ = f.unlock();
        }
        log::info!("disk cache {}: released", self.dir.display());
    }

    /// Rebuild the index from the files' first bytes; remove temporary and unreadable files.
    fn recover(&self) {
        let started = Instant::now();
        let mut found: Vec<(SystemTime, HashBinary, Variant)> = Vec::new();
        let mut removed = 0usize;
        let v1 = self.dir.join("v1");
        let subdirs = fs::read_dir(&v1).into_iter().flatten().flatten();
        for sub in subdirs {
            let files = fs::read_dir(sub.path()).into_iter().flatten().flatten();
            for f in files {
                let path = f.path();
                let is_entry = path.extension().is_some_and(|e| e == "e");
                match is_entry.then(|| read_head(&path)).flatten() {
                    Some((meta, len, body, mtime))
                        if path == self.path_of(&meta.primary, &meta.variance) =>
                    {
                        let v = Variant {
                            variance: meta.variance,
                            vary: meta.vary_spec(),
                            bytes: len,
                            body,
                            verified: None,
                            generation: 0,
                            seq: 0,
                            tags: meta.tags,
                            url: meta.url,
                        };
                        found.push((mtime, meta.primary, v));
                    }
                    _ => {
                        removed += 1;
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        found.sort_by_key(|(t, _, _)| *t);
        let mut ix = self.index.lock();
        for (_, primary, mut v) in found {
            ix.seq += 1;
            v.seq = ix.seq;
            v.generation = ix.seq;
            ix.bytes += v.bytes;
            ix.objects += 1;
            ix.order.push_back((v.seq, primary, v.variance));
            ix.keys.entry(primary).or_default().push(v);
        }
        let (objects, bytes) = (ix.objects, ix.bytes);
        drop(ix);
        let secs = started.elapsed().as_secs_f64();
        METRICS.disk.recovery_seconds.set(secs);
        self.publish(objects, bytes);
        log::info!(
            "disk cache {}: recovered {objects} entries ({bytes} bytes) in {secs:.3} s; removed {removed} unusable files",
            self.dir.display()
        );
    }

    fn publish(&self, objects: usize, bytes: u64) {
        METRICS.disk.objects.set(objects as i64);
        METRICS.disk.bytes.set(bytes as i64);
    }

    fn send(&self, job: Job) -> bool {
        let jobs = self.jobs.lock();
        let Some(tx) = jobs.as_ref() else {
            return false;
        };
        if !self.is_open()
            && self.jobs_before_open.fetch_add(1, Ordering::AcqRel) >= MAX_JOBS_BEFORE_OPEN
        {
            return false;
        }
        tx.send(job).is_ok()
    }

    /// Queue `entry` (stored in memory under `primary`) for writing.
    pub fn write(&self, primary: HashBinary, entry: &Arc<Entry>) {
        if !self.is_open() {
            return;
        }
        let size = entry.body.len();
        if size > self.max_object.load(Ordering::Acquire) {
            skipped("too_large");
            return;
        }
        let queued = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if queued + size > MAX_QUEUED_WRITE_BYTES {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            skipped("queue_full");
            return;
        }
        if !self.send(Job::Write(primary, entry.clone())) {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
        }
    }

    /// Mark the purges up to the memory tier's purge epoch `epoch` as queued: reached by the
    /// writer, they are applied ([`DiskStore::purges_applied`]).
    pub fn purged_through(&self, epoch: u64) {
        self.send(Job::Applied(epoch));
    }

    /// The memory tier's purge epoch up to which every purge has been applied to the files. A
    /// response read from disk must be checked against the purges after this, not after the
    /// read began: a purge whose job is still queued has not removed the file yet.
    pub fn purges_applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn remove_key(&self, primary: &HashBinary) {
        self.send(Job::RemoveKey(*primary));
    }

    pub fn soft_purge_key(&self, primary: &HashBinary) {
        self.send(Job::SoftKey(*primary));
    }

    pub fn purge_tag(&self, tag: &str, mode: PurgeMode) {
        self.send(Job::Tag(tag.to_string(), mode));
    }

    pub fn purge_prefix(&self, prefix: &str, mode: PurgeMode) {
        self.send(Job::Prefix(prefix.to_string(), mode));
    }

    /// Purge one response: a fill that a purge overtook may have queued its write before the
    /// purge's own job.
    pub fn purge_variant(
        &self,
        primary: &HashBinary,
        variance: Option<HashBinary>,
        mode: PurgeMode,
    ) {
        self.send(Job::Variant(*primary, variance, mode));
    }

    /// The variance `req` selects among the responses stored under `primary` (by their
    /// `Vary`); `None` when there are none.
    pub fn variance_for(
        &self,
        primary: &HashBinary,
        req: &HeaderMap,
    ) -> Option<Option<HashBinary>> {
        let ix = self.index.lock();
        let variants = ix.keys.get(primary)?;
        Some(match variants.first().map(|v| &v.vary) {
            Some(VarySpec::Headers(names)) => Some(variance(names, req)),
            _ => None,
        })
    }

    /// The response on disk under `primary` with `variance_wanted` (see
    /// [`DiskStore::variance_for`]), verified: read whole when its body is at most `whole_max`
    /// bytes (it will be promoted to memory), else opened for reading in chunks ([`body`]).
    /// `None` when there is none, or when it cannot be read or is damaged (then it is removed
    /// and counted). Reads that may wait for the device run off the async threads.
    pub async fn find_variant(
        &'static self,
        primary: HashBinary,
        variance_wanted: Option<HashBinary>,
        whole_max: usize,
    ) -> Option<(Meta, ResponseHeader, DiskBody)> {
        if !self.is_open() {
            return None;
        }
        let (body_len, verified, generation) = {
            let ix = self.index.lock();
            let v = ix
                .keys
                .get(&primary)?
                .iter()
                .find(|v| v.variance == variance_wanted)?;
            (v.body, v.verified, v.generation)
        };
        let path = self.path_of(&primary, &variance_wanted);
        let result = if body_len > whole_max as u64 {
            match tokio::task::spawn_blocking(move || body::open(&path, verified)).await {
                Ok(Ok((meta, head, b, ino))) => {
                    self.verified(&primary, &variance_wanted, ino);
                    Ok((meta, head, DiskBody::Streamed(b)))
                }
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.to_string()),
            }
        } else {
            // Bounded by what was listed (meta and head are at most 1 MiB each): a file
            // replaced meanwhile by a larger one is not read whole.
            let max = format::file_len(1 << 20, 1 << 20, whole_max as u64);
            let bytes = match read_if_cached(&path) {
                Some(bytes) => Ok(bytes),
                None => match tokio::task::spawn_blocking(move || read_file(&path, max)).await {
                    Ok(read) => read,
                    Err(e) => Err(e.to_string()),
                },
            };
            bytes.and_then(|b| {
                format::decode(&b)
                    .map(|(meta, head, body)| (meta, head, DiskBody::Whole(body)))
                    .map_err(|e| e.to_string())
            })
        };
        match result {
            Ok((meta, head, body))
                if meta.primary == primary && meta.variance == variance_wanted =>
            {
                METRICS.disk.reads.inc();
                if matches!(body, DiskBody::Streamed(..)) {
                    METRICS.disk.streamed_reads.inc();
                }
                self.touch(&primary, &variance_wanted);
                Some((meta, head, body))
            }
            Ok(_) => self.unreadable(primary, variance_wanted, generation, "holds another key"),
            Err(e) => self.unreadable(primary, variance_wanted, generation, &e),
        }
    }

    /// Remember that file `ino` of this response was verified whole.
    fn verified(&self, primary: &HashBinary, variance: &Option<HashBinary>, ino: u64) {
        let mut ix = self.index.lock();
        if let Some(v) = ix
            .keys
            .get_mut(primary)
            .and_then(|l| l.iter_mut().find(|v| v.variance == *variance))
        {
            v.verified = Some(ino);
        }
    }

    /// A response used for a hit (read from disk, or served from memory: `Entry::claim_disk_use`)
    /// moves to the young end of the eviction order: eviction is by last use, not by write
    /// time alone. The old place is left behind
    /// and skipped (its sequence number no longer matches), and compacted with the others.
    /// Skipped when another thread holds the index (a purge, a fill making room): a use is
    /// worth less than a request waiting.
    pub fn touch(&self, primary: &HashBinary, variance: &Option<HashBinary>) {
        let Some(mut ix) = self.index.try_lock() else {
            return;
        };
        ix.seq += 1;
        let seq = ix.seq;
        let Some(v) = ix
            .keys
            .get_mut(primary)
            .and_then(|l| l.iter_mut().find(|v| v.variance == *variance))
        else {
            return;
        };
        v.seq = seq;
        ix.order.push_back((seq, *primary, *variance));
        self.compact(&mut ix);
    }

    /// Drop the stale places in the eviction order before they outnumber the objects.
    fn compact(&self, ix: &mut Index) {
        if ix.order.len() > 2 * ix.objects + 1024 {
            let Index { keys, order, .. } = ix;
            order.retain(|(seq, k, var)| {
                keys.get(k)
                    .is_some_and(|l| l.iter().any(|v| v.seq == *seq && v.variance == *var))
            });
        }
    }

    /// The file of generation `generation` could not be used: removed and counted, unless it
    /// is no longer listed (evicted, purged or rewritten while it was read: not damage).
    fn unreadable<T>(
        &self,
        primary: HashBinary,
        v: Option<HashBinary>,
        generation: u64,
        why: &str,
    ) -> Option<T> {
        let path = self.path_of(&primary, &v);
        let mut doomed = Doomed::default();
        let mut ix = self.index.lock();
        let list = ix.keys.get_mut(&primary)?;
        let pos = list
            .iter()
            .position(|x| x.variance == v && x.generation == generation)?;
        let gone = list.remove(pos);
        if list.is_empty() {
            ix.keys.remove(&primary);
        }
        ix.bytes -= gone.bytes;
        ix.objects -= 1;
        // A directory in its place (or anything else) goes too; the next fill writes anew.
        doomed.take(path.clone());
        let (objects, total) = (ix.objects, ix.bytes);
        drop(ix);
        doomed.unlink();
        self.publish(objects, total);
        METRICS.disk.read_errors.inc();
        log::warn!(
            "disk cache: {} is unusable ({why}); removed, the request goes to the origin",
            path.display()
        );
        None
    }

    fn run_writer(&self, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            match job {
                Job::Write(primary, entry) => {
                    let size = entry.body.len();
                    self.write_now(primary, &entry);
                    self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                }
                Job::RemoveKey(primary) => self.remove_key_now(&primary, |_| true),
                Job::Applied(epoch) => {
                    self.applied.fetch_max(epoch, Ordering::AcqRel);
                }
                Job::Variant(primary, variance, PurgeMode::Hard) => {
                    self.remove_key_now(&primary, |v| v.variance == variance)
                }
                Job::Variant(primary, variance, PurgeMode::Soft) => {
                    self.soft_where(Some(&primary), |_, v| v.variance == variance)
                }
                Job::Clear => self.remove_where(|_, _| true),
                Job::Tag(tag, PurgeMode::Hard) => self.remove_where(|_, v| v.tags.contains(&tag)),
                Job::Prefix(p, PurgeMode::Hard) => {
                    self.remove_where(|_, v| v.url.as_deref().is_some_and(|u| u.starts_with(&p)))
                }
                Job::SoftKey(primary) => self.soft_where(Some(&primary), |_, _| true),
                Job::Trim => self.trim(),
                #[cfg(test)]
                Job::Flush(done) => {
                    let _ = done.send(());
                }
                Job::Tag(tag, PurgeMode::Soft) => {
                    self.soft_where(None, |_, v| v.tags.contains(&tag))
                }
                Job::Prefix(p, PurgeMode::Soft) => self.soft_where(None, |_, v| {
                    v.url.as_deref().is_some_and(|u| u.starts_with(&p))
                }),
            }
        }
    }

    fn write_now(&self, primary: HashBinary, entry: &Entry) {
        let bytes = format::encode(primary, entry);
        let len = bytes.len() as u64;
        if len > self.budget.load(Ordering::Acquire) {
            skipped("too_large");
            return;
        }
        let path = self.path_of(&primary, &entry.variance);
        // Room first, then the file: the directory never holds more than the budget, not even
        // for the moment between a write and the eviction it causes.
        let mut doomed = Doomed::default();
        {
            let mut ix = self.index.lock();
            let room = self.budget.load(Ordering::Acquire).saturating_sub(len);
            self.evict_to(&mut ix, room, &mut doomed);
        }
        doomed.unlink();
        let written = spill::FileWriter::create(&path).and_then(|mut out| {
            out.write_whole(&bytes)?;
            Ok(out)
        });
        let variant = Variant::of(entry, len, entry.body.len() as u64);
        match written {
            Ok(out) => {
                let mut ix = self.index.lock();
                self.list(&mut ix, primary, variant, out, &mut doomed);
                let (objects, total) = (ix.objects, ix.bytes);
                drop(ix);
                doomed.unlink();
                self.publish(objects, total);
            }
            Err(e) => {
                METRICS.disk.write_errors.inc();
                self.log_write_error(&path, &e);
            }
        }
    }

    /// Put a file just written into place and list it, replacing the variants it replaces.
    /// Under the index lock, like every rename and removal of an entry file (see [`Doomed`]).
    fn list(
        &self,
        ix: &mut Index,
        primary: HashBinary,
        mut v: Variant,
        out: spill::FileWriter,
        doomed: &mut Doomed,
    ) -> bool {
        let path = self.path_of(&primary, &v.variance);
        let len = v.bytes;
        if let Err(e) = out.rename_to(&path) {
            METRICS.disk.write_errors.inc();
            self.log_write_error(&path, &e);
            return false;
        }
        ix.seq += 1;
        v.seq = ix.seq;
        v.generation = ix.seq;
        let variance = v.variance;
        let list = ix.keys.entry(primary).or_default();
        // A response with another Vary replaces every variant (as in memory).
        let same_vary = list.first().is_none_or(|x| x.vary == v.vary);
        let mut freed = 0u64;
        let mut gone = 0usize;
        let mut replaced = Vec::new();
        list.retain(|x| {
            let keep = same_vary && x.variance != v.variance;
            if !keep {
                freed += x.bytes;
                gone += 1;
                if x.variance != v.variance {
                    replaced.push(x.variance);
                }
            }
            keep
        });
        list.push(v);
        for r in replaced {
            doomed.take(self.path_of(&primary, &r));
        }
        ix.bytes = ix.bytes - freed + len;
        ix.objects = ix.objects - gone + 1;
        let seq = ix.seq;
        ix.order.push_back((seq, primary, variance));
        // Rewrites, reads and purges leave stale places in the order, which eviction would
        // only skip.
        self.compact(ix);
        true
    }

    /// Evict down to the budget (after a reload lowered it).
    fn trim(&self) {
        let mut doomed = Doomed::default();
        let mut ix = self.index.lock();
        self.evict_to(&mut ix, self.budget.load(Ordering::Acquire), &mut doomed);
        let (objects, total) = (ix.objects, ix.bytes);
        drop(ix);
        doomed.unlink();
        self.publish(objects, total);
    }

    /// Remove the least recently used files until the store holds at most `limit` bytes
    /// (counting the bytes reserved for files being written). Under the index lock.
    fn evict_to(&self, ix: &mut Index, limit: u64, doomed: &mut Doomed) {
        while ix.bytes + ix.reserved > limit {
            let Some((seq, primary, variance)) = ix.order.pop_front() else {
                break;
            };
            let Some(list) = ix.keys.get_mut(&primary) else {
                continue;
            };
            let Some(pos) = list
                .iter()
                .position(|v| v.variance == variance && v.seq == seq)
            else {
                continue;
            };
            let v = list.remove(pos);
            if list.is_empty() {
                ix.keys.remove(&primary);
            }
            ix.bytes -= v.bytes;
            ix.objects -= 1;
            METRICS.disk.evictions.inc();
            doomed.take(self.path_of(&primary, &variance));
        }
    }

    /// [`DiskStore::remove_where`] for the variants of one key, without visiting the others.
    fn remove_key_now(&self, primary: &HashBinary, select: impl Fn(&Variant) -> bool) {
        let mut doomed = Doomed::default();
        let mut ix = self.index.lock();
        let Some(list) = ix.keys.get_mut(primary) else {
            return;
        };
        let mut freed = 0u64;
        let mut gone = 0usize;
        list.retain(|v| {
            if select(v) {
                freed += v.bytes;
                gone += 1;
                doomed.take(self.path_of(primary, &v.variance));
                false
            } else {
                true
            }
        });
        if list.is_empty() {
            ix.keys.remove(primary);
        }
        ix.bytes -= freed;
        ix.objects -= gone;
        let (objects, total) = (ix.objects, ix.bytes);
        drop(ix);
        doomed.unlink();
        self.publish(objects, total);
    }

    /// Remove the selected responses: found in one pass under the index lock (no file
    /// touched), then removed in batches, each under the lock, so a purge of many files never
    /// holds off the requests looking for others for long.
    fn remove_where(&self, select: impl Fn(&HashBinary, &Variant) -> bool) {
        let targets: Vec<(HashBinary, Option<HashBinary>, u64)> = {
            let ix = self.index.lock();
            ix.keys
                .iter()
                .flat_map(|(k, l)| {
                    l.iter()
                        .filter(|v| select(k, v))
                        .map(|v| (*k, v.variance, v.generation))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for batch in targets.chunks(REMOVAL_BATCH) {
            let mut doomed = Doomed::default();
            let mut ix = self.index.lock();
            for (k, variance, generation) in batch {
                let Some(list) = ix.keys.get_mut(k) else {
                    continue;
                };
                // Only the file that was selected: one written since is another response.
                let Some(pos) = list
                    .iter()
                    .position(|v| v.variance == *variance && v.generation == *generation)
                else {
                    continue;
                };
                let v = list.remove(pos);
                if list.is_empty() {
                    ix.keys.remove(k);
                }
                ix.bytes -= v.bytes;
                ix.objects -= 1;
                doomed.take(self.path_of(k, variance));
            }
            let (objects, total) = (ix.objects, ix.bytes);
            drop(ix);
            doomed.unlink();
            self.publish(objects, total);
        }
    }

    /// Mark the selected responses stale in their files (verify, rewrite with the mark,
    /// rename over): those of `key` only, when given (without visiting the others).
    fn soft_where(&self, key: Option<&HashBinary>, select: impl Fn(&HashBinary, &Variant) -> bool) {
        let targets: Vec<(HashBinary, Option<HashBinary>, u64)> = {
            let ix = self.index.lock();
            let pick = |(k, l): (&HashBinary, &Vec<Variant>)| {
                l.iter()
                    .filter(|v| select(k, v))
                    .map(|v| (*k, v.variance, v.generation))
                    .collect::<Vec<_>>()
            };
            match key {
                Some(k) => ix.keys.get_key_value(k).map(pick).unwrap_or_default(),
                None => ix.keys.iter().flat_map(pick).collect(),
            }
        };
        let now = SystemTime::now();
        for (primary, variance, generation) in targets {
            let path = self.path_of(&primary, &variance);
            let out = match self.rewrite_stale(&path, now) {
                Ok(Some(out)) => out,
                Ok(None) => continue,
                Err(e) => {
                    METRICS.disk.write_errors.inc();
                    log::warn!(
                        "disk cache: cannot mark {} stale ({e}); removed instead",
                        path.display()
                    );
                    self.remove_key_now(&primary, |v| {
                        v.variance == variance && v.generation == generation
                    });
                    continue;
                }
            };
            // Renamed over only if it is still the file that was read (not evicted, removed
            // or rewritten meanwhile: hits leave it as it is); the new length counts, so the
            // total stays exact.
            let len = out.len();
            let mut ix = self.index.lock();
            let ix = &mut *ix;
            ix.seq += 1;
            let new_generation = ix.seq;
            let Some(v) = ix.keys.get_mut(&primary).and_then(|l| {
                l.iter_mut()
                    .find(|v| v.variance == variance && v.generation == generation)
            }) else {
                continue;
            };
            if let Err(e) = out.rename_to(&path) {
                METRICS.disk.write_errors.inc();
                self.log_write_error(&path, &e);
                continue;
            }
            ix.bytes = ix.bytes - v.bytes + len;
            v.bytes = len;
            v.verified = None;
            v.generation = new_generation;
        }
    }

    fn log_write_error(&self, path: &Path, e: &std::io::Error) {
        let mut last = self.last_error_log.lock();
        if last.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
            *last = Some(Instant::now());
            let hint = if e.raw_os_error() == Some(28) {
                " (the disk is full: fills to disk stop until space frees up; serving goes on)"
            } else {
                ""
            };
            log::warn!(
                "disk cache: cannot write {}: {e}{hint}; counted in etagate_cache_disk_write_errors_total",
                path.display()
            );
        }
    }
}

/// An entry from what a file holds (`id` given by the memory tier it joins).
pub fn entry_from(meta: Meta, head: ResponseHeader, body: Bytes, id: u64) -> Entry {
    let tags = meta.tags();
    let url = meta.url.as_deref().map(Arc::from);
    let mut e = Entry::new(
        id,
        head,
        body,
        meta.freshness,
        meta.variance,
        meta.vary_spec(),
        meta.etag_computed,
    )
    .labelled(tags, url);
    e.created = meta.created;
    e
}

/// Files at most this large are read on the request's own thread when the page cache holds
/// them; larger ones, and any the kernel would have to wait for, go to the blocking pool.
const INLINE_READ_MAX: u64 = 256 << 10;

/// A small entry file read without waiting for the device: `preadv2(RWF_NOWAIT)` reads only
/// what the page cache holds, and anything else (not cached, not supported, an error) is
/// `None`, for [`read_file`] on the blocking pool to do properly. A hit on a warm store thus
/// costs no hand-off between threads (which, measured with `scripts/bench-disk.sh`, cost more
/// than the read itself), and a cold one never stalls the other requests of this thread on
/// the disk.
fn read_if_cached(path: &Path) -> Option<Vec<u8>> {
    let f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len > INLINE_READ_MAX {
        return None;
    }
    let mut out = vec![0u8; len as usize];
    body::read_cached(&f, &mut out, 0).then_some(out)
}

fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len > max {
        return Err(format!("{len} bytes, more than an entry may hold"));
    }
    let mut out = Vec::with_capacity(len as usize);
    f.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A file's meta, its length, its body's length and its modification time, from its prefix
/// and meta; `None` when it is not a whole entry file of this format.
fn read_head(path: &Path) -> Option<(Meta, u64, u64, SystemTime)> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path).ok()?;
    let md = f.metadata().ok()?;
    let mut prefix = [0u8; format::PREFIX_LEN];
    f.read_exact_at(&mut prefix, 0).ok()?;
    let (m, h, b) = format::lengths(&prefix).ok()?;
    if format::file_len(m, h, b) != md.len() {
        return None;
    }
    let mut meta = vec![0u8; m];
    f.read_exact_at(&mut meta, format::meta_offset(b)).ok()?;
    let meta = format::decode_meta(&meta).ok()?;
    Some((
        meta,
        md.len(),
        b,
        md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::freshness::Freshness;
    use std::time::Duration;

    /// A store over `dir`, as a process holds it, not started.
    fn unstarted(dir: &Path, budget: u64) -> &'static DiskStore {
        Box::leak(Box::new(DiskStore::new(
            dir.to_path_buf(),
            Limits {
                budget,
                max_object: 1 << 20,
            },
        )))
    }

    /// Whether `d` opened within 5 s.
    fn opens(d: &DiskStore) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !d.is_open() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        d.is_open()
    }

    /// A started, open store.
    fn store(dir: &Path, budget: u64) -> &'static DiskStore {
        let d = unstarted(dir, budget);
        d.start();
        assert!(opens(d), "the store opens");
        d
    }

    fn flush(d: &DiskStore) {
        let (tx, rx) = mpsc::channel();
        assert!(d.send(Job::Flush(tx)), "writer running");
        rx.recv_timeout(Duration::from_secs(10)).expect("flushed");
    }

    fn entry(body: &[u8], tags: &[&str], url: &str) -> Arc<Entry> {
        let mut h = ResponseHeader::build(200, None).expect("header");
        h.append_header("content-length", body.len()).expect("cl");
        Arc::new(
            Entry::new(
                1,
                h,
                Bytes::copy_from_slice(body),
                Freshness::plain(Duration::from_secs(60), SystemTime::now()),
                None,
                VarySpec::None,
                true,
            )
            .labelled(
                tags.iter().map(|t| Arc::from(*t)).collect(),
                Some(Arc::from(url)),
            ),
        )
    }

    /// Bodies up to this are read whole (as the memory tier of the tests keeps them).
    const WHOLE: usize = 1 << 20;

    fn whole(b: DiskBody) -> Bytes {
        match b {
            DiskBody::Whole(b) => b,
            DiskBody::Streamed(_) => panic!("read whole expected"),
        }
    }

    /// Write `body` the way a fill too large for memory does, `piece` bytes at a time.
    fn spill_of(d: &'static DiskStore, k: HashBinary, body: &[u8], piece: usize) -> bool {
        let Some(mut s) = d.spill(&k, &None) else {
            return false;
        };
        for p in body.chunks(piece) {
            if !s.append(p) {
                return false;
            }
        }
        let e = entry(b"", &["big"], "http://a.test/big");
        s.commit(k, &e)
    }

    fn key(i: u32) -> HashBinary {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_le_bytes());
        k[15] = 7;
        k
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for sub in fs::read_dir(dir.join("v1")).into_iter().flatten().flatten() {
            for f in fs::read_dir(sub.path()).into_iter().flatten().flatten() {
                out.push(f.path());
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_response_too_large_for_memory_is_written_and_read_in_chunks() {
        let dir = tempfile::tempdir().expect("dir");
        let d = store(dir.path(), 64 << 20);
        d.max_object.store(4 << 20, Ordering::Release);
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let spilled = METRICS.disk.spilled.get();
        assert!(spill_of(d, key(1), &body, 16 << 10), "spilled");
        flush(d);
        assert_eq!(METRICS.disk.spilled.get(), spilled + 1);
        assert_eq!(files(dir.path()).len(), 1, "one file, no temporary left");
        let (meta, head, found) = d.find_variant(key(1), None, 1 << 20).await.expect("found");
        assert_eq!(meta.tags, ["big"]);
        assert_eq!(head.status, 200);
        let DiskBody::Streamed(file) = found else {
            panic!("larger than the memory tier keeps: streamed");
        };
        assert_eq!(file.len(), body.len() as u64);
        let mut back = Vec::new();
        while (back.len() as u64) < file.len() {
            let n = (file.len() - back.len() as u64).min(body::CHUNK as u64) as usize;
            back.extend_from_slice(&file.read(back.len() as u64, n).await.expect("read"));
        }
        assert!(back == body, "the same bytes");
        assert!(
            file.read(file.len() - 1, 2).await.is_err(),
            "never past the body"
        );
        // The same file, read whole by a tier that keeps it, and after a soft purge.
        d.soft_purge_key(&key(1));
        flush(d);
        let (meta, _, found) = d.find_variant(key(1), None, 8 << 20).await.expect("found");
        assert!(meta.freshness.invalidated, "marked stale");
        assert!(whole(found) == body, "rewritten whole");
        d.release();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spills_hold_the_budget_and_leave_nothing_when_they_give_up() {
        let dir = tempfile::tempdir().expect("dir");
        let d = store(dir.path(), 4 << 20);
        d.max_object.store(3 << 20, Ordering::Release);
        for i in 0..4 {
            d.write(key(10 + i), &entry(&[1u8; 900_000], &[], "http://a.test/s"));
        }
        flush(d);
        assert_eq!(files(dir.path()).len(), 4);
        // Room is made as the body arrives: older files go before the budget is passed.
        let body = vec![2u8; 2_500_000];
        assert!(spill_of(d, key(1), &body, 64 << 10));
        flush(d);
        let total: u64 = files(dir.path())
            .iter()
            .map(|p| fs::metadata(p).expect("meta").len())
            .sum();
        assert!(total <= 4 << 20, "{total} bytes on disk");
        assert_eq!(d.index.lock().bytes, total, "counted exactly");
        assert_eq!(d.index.lock().reserved, 0, "nothing left reserved");
        // A damaged large file is a miss, never a body.
        let path = d.path_of(&key(1), &None);
        let mut bytes = fs::read(&path).expect("file");
        bytes[1_000_000] ^= 0x10;
        fs::write(&path, &bytes).expect("damage");
        assert!(d.find_variant(key(1), None, 1 << 20).await.is_none());
        assert!(!path.exists(), "removed");
        // Past max_object_size: given up, its temporary file removed, its bytes given back.
        assert!(!spill_of(d, key(2), &vec![3u8; 3_200_000], 64 << 10));
        // Broken off halfway (the client went away): dropped.
        let mut s = d.spill(&key(3), &None).expect("spill");
        assert!(s.append(&[4u8; 100_000]));
        drop(s);
        flush(d);
        assert_eq!(d.index.lock().reserved, 0);
        let names: Vec<String> = files(dir.path())
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        assert!(names.iter().all(|n| n.ends_with(".e")), "{names:?}");
        d.release();
    }

    #[tokio::test]
    async fn responses_survive_a_restart_and_only_one_process_holds_the_store() {
        let dir = tempfile::tempdir().expect("dir");
        let a = store(dir.path(), 1 << 20);
        a.write(key(1), &entry(b"one", &["t"], "http://a.test/1"));
        flush(a);
        let waiting = unstarted(dir.path(), 1 << 20);
        waiting.start();
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiting.is_open(), "the store is held by the first process");
        a.release();
        assert!(opens(waiting), "taken once released");
        let (meta, _, body) = waiting
            .find_variant(key(1), None, WHOLE)
            .await
            .expect("recovered");
        assert_eq!(&whole(body)[..], b"one");
        assert_eq!(meta.tags, ["t"]);
        assert!(waiting.find_variant(key(2), None, WHOLE).await.is_none());
        waiting.release();
    }

    #[tokio::test]
    async fn purges_that_arrive_while_the_store_is_held_elsewhere_apply_when_it_opens() {
        let dir = tempfile::tempdir().expect("dir");
        let a = store(dir.path(), 1 << 20);
        for i in 0..3 {
            a.write(
                key(i),
                &entry(b"kept", &["t"], &format!("http://a.test/{i}")),
            );
        }
        flush(a);
        let b = unstarted(dir.path(), 1 << 20);
        b.start();
        std::thread::sleep(Duration::from_millis(300));
        assert!(!b.is_open(), "held by the first process");
        // The memory tier of the new process forwards these at once; the store is not open.
        b.remove_key(&key(0));
        b.purge_variant(&key(1), None, PurgeMode::Hard);
        a.release();
        assert!(opens(b), "taken once released");
        flush(b);
        assert!(
            b.find_variant(key(0), None, WHOLE).await.is_none(),
            "key purge kept"
        );
        assert!(
            b.find_variant(key(1), None, WHOLE).await.is_none(),
            "variant purge kept"
        );
        assert!(
            b.find_variant(key(2), None, WHOLE).await.is_some(),
            "the rest stays"
        );
        b.release();
    }

    #[tokio::test]
    async fn eviction_spares_what_was_read_recently() {
        let dir = tempfile::tempdir().expect("dir");
        let d = store(dir.path(), 1 << 20);
        let body = vec![b'x'; 100 << 10];
        for i in 0..10 {
            d.write(key(i), &entry(&body, &[], &format!("http://a.test/{i}")));
        }
        flush(d);
        assert!(
            d.find_variant(key(0), None, WHOLE).await.is_some(),
            "all ten fit"
        );
        d.write(key(10), &entry(&body, &[], "http://a.test/10"));
        flush(d);
        assert!(
            d.find_variant(key(0), None, WHOLE).await.is_some(),
            "the oldest write, read since, stays"
        );
        assert!(
            d.find_variant(key(1), None, WHOLE).await.is_none(),
            "the least recently used goes"
        );
        assert!(d.find_variant(key(10), None, WHOLE).await.is_some());
        d.release();
    }

    #[tokio::test]
    async fn rewriting_one_key_keeps_the_write_order_bounded_and_the_count_exact() {
        let dir = tempfile::tempdir().expect("dir");
        let d = store(dir.path(), 64 << 20);
        for round in 0..3000u32 {
            d.write(key(round % 3), &entry(b"again", &[], "http://a.test/x"));
            if round % 500 == 0 {
                flush(d);
            }
        }
        d.soft_purge_key(&key(1));
        flush(d);
        let ix = d.index.lock();
        assert_eq!(ix.objects, 3);
        assert!(
            ix.order.len() <= 2 * ix.objects + 1024,
            "{} places",
            ix.order.len()
        );
        let on_disk: u64 = files(dir.path())
            .iter()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        assert_eq!(
            on_disk, ix.bytes,
            "a soft purge's rewrite is counted as written"
        );
        drop(ix);
        d.release();
    }

    #[tokio::test]
    async fn the_budget_holds_and_purges_follow_the_writes_they_were_asked_after() {
        let dir = tempfile::tempdir().expect("dir");
        let d = store(dir.path(), 1 << 20);
        let body = vec![b'x'; 100 << 10];
        for i in 0..40 {
            d.write(
                key(i),
                &entry(
                    &body,
                    &[if i % 2 == 0 { "even" } else { "odd" }],
                    &format!("http://a.test/p/{i}"),
                ),
            );
        }
        flush(d);
        let on_disk: u64 = files(dir.path())
            .iter()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(on_disk <= 1 << 20, "{on_disk} bytes on disk");
        assert_eq!(on_disk, d.index.lock().bytes, "the index counts every byte");
        assert!(
            d.find_variant(key(39), None, WHOLE).await.is_some(),
            "the newest stays"
        );
        assert!(
            d.find_variant(key(0), None, WHOLE).await.is_none(),
            "the oldest went"
        );
        // A write and a purge of the same response, in that order: nothing is left.
        d.write(key(100), &entry(b"new", &["late"], "http://a.test/q/1"));
        d.purge_tag("late", PurgeMode::Hard);
        d.write(key(101), &entry(b"new", &[], "http://a.test/q/2"));
        d.purge_prefix("http://a.test/q/", PurgeMode::Hard);
        d.write(key(102), &entry(b"new", &[], "http://a.test/r"));
        d.remove_key(&key(102));
        flush(d);
        for k in [100, 101, 102] {
            assert!(
                d.find_variant(key(k), None, WHOLE).await.is_none(),
                "{k} purged"
            );
        }
        d.purge_tag("odd", PurgeMode::Hard);
        flush(d);
        assert!(
            d.find_variant(key(39), None, WHOLE).await.is_none(),
            "odd ones purged"
        );
        d.release();
    }

    #[tokio::test]
    async fn a_soft_purge_marks_the_file_stale_and_damaged_files_are_misses() {
        let dir = tempfile::tempdir().expect("dir");
        let d = store(dir.path(), 1 << 20);
        d.write(key(1), &entry(b"soft", &["s"], "http://a.test/s"));
        d.write(key(2), &entry(b"damaged", &[], "http://a.test/d"));
        flush(d);
        d.purge_tag("s", PurgeMode::Soft);
        flush(d);
        let (meta, _, _) = d.find_variant(key(1), None, WHOLE).await.expect("kept");
        assert!(meta.freshness.invalidated, "marked stale on disk");
        let path = d.path_of(&key(2), &None);
        let mut bytes = fs::read(&path).expect("file");
        let last = bytes.len() - 40;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).expect("damage");
        let errors = METRICS.disk.read_errors.get();
        assert!(
            d.find_variant(key(2), None, WHOLE).await.is_none(),
            "never served"
        );
        assert!(METRICS.disk.read_errors.get() > errors);
        assert!(!path.exists(), "removed");
        d.release();
    }

    /// The recovery time of 100,000 entries of 4 KiB (docs/disk-cache.md). Run with
    /// `cargo test --release --lib recovery_of_100k -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn recovery_of_100k_entries() {
        let dir = tempfile::tempdir_in("/var/tmp").expect("dir");
        let body = vec![b'r'; 4096];
        let e = entry(&body, &["tag"], "http://a.test/x");
        let d = unstarted(dir.path(), 1 << 40);
        let started = Instant::now();
        for i in 0..100_000u32 {
            let path = d.path_of(&key(i), &None);
            let mut out = spill::FileWriter::create(&path).expect("create");
            out.write_whole(&format::encode(key(i), &e)).expect("write");
            out.rename_to(&path).expect("rename");
        }
        let wrote = started.elapsed();
        assert!(d.try_lock().expect("lock"));
        let started = Instant::now();
        d.recover();
        let took = started.elapsed();
        assert_eq!(d.index.lock().objects, 100_000);
        println!(
            "wrote 100,000 entries in {wrote:?}; recovered them in {took:?} (warm page cache)"
        );
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg("sync; echo 3 > /proc/sys/vm/drop_caches")
            .status();
        let d2 = unstarted(dir.path(), 1 << 40);
        let started = Instant::now();
        d2.recover();
        println!(
            "recovered them again in {:?} after dropping the page cache",
            started.elapsed()
        );
    }
}
