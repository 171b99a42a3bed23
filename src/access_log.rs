//! The access log: one line per request, written off the request path.
//!
//! Requests push a finished [`AccessRecord`] onto a bounded lock-free queue; a dedicated thread
//! drains it every few milliseconds, formats and writes. A request never takes a lock, never
//! wakes a thread, and never waits: when the writer falls behind and the queue is full, the
//! line is dropped and counted (`etagate_access_log_dropped_total`). A reload reopens the file
//! (so logrotate works with `systemctl reload`) and applies the format.

use crate::metrics::METRICS;
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How the log is written; the runtime builds it from the checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    /// `None` is standard output.
    pub path: Option<PathBuf>,
    pub format: Format,
    /// Lines queued for the writer before new lines are dropped.
    pub buffer: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// How often the writer drains the queue.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// What one request did, as the log records it.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub time: SystemTime,
    pub client: Option<IpAddr>,
    pub method: http::Method,
    pub uri: http::Uri,
    pub host: String,
    pub status: u16,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    /// Cache outcome (`hit`, `miss`, ...), `-` when the cache was not involved.
    pub cache: &'static str,
    /// Where the response's ETag came from: `origin`, `computed`, `stored` or `-`.
    pub etag: &'static str,
    pub body_bytes: u64,
    /// Time waiting for the origin's response header, if the origin was asked.
    pub upstream_seconds: Option<f64>,
    pub total_seconds: f64,
}

struct Shared {
    queue: ArrayQueue<AccessRecord>,
    enabled: AtomicBool,
    /// A new configuration for the writer to apply (set by reloads).
    pending: Mutex<Option<Settings>>,
}

/// The sending side, shared by all requests.
#[derive(Clone)]
pub struct AccessLogger {
    shared: Arc<Shared>,
    /// The writer, until its thread is started.
    writer: Arc<Mutex<Option<Writer>>>,
}

impl AccessLogger {
    /// Open the log (so a bad path fails at start) and create the queue, `conf.buffer` lines,
    /// fixed for the life of the process. Lines queue up until [`Self::spawn_writer`].
    pub fn open(conf: &Settings) -> std::io::Result<AccessLogger> {
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(conf.buffer.max(1)),
            enabled: AtomicBool::new(conf.enabled),
            pending: Mutex::new(None),
        });
        let writer = Writer::open(conf)?;
        Ok(AccessLogger {
            shared,
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Start the writer thread. Called once the process is in its final form: a thread started
    /// before `-d` forks would not exist in the daemon.
    pub fn spawn_writer(&self) {
        let Some(mut writer) = self.writer.lock().take() else {
            return;
        };
        let s = self.shared.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("etagate-access-log".to_string())
            .spawn(move || writer.run(&s))
        {
            log::error!("cannot start the access log writer: {e}; lines will be dropped");
        }
    }

    /// Whether lines are wanted at all (so requests can skip building one).
    pub fn enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::Relaxed)
    }

    /// Queue a line; never waits.
    pub fn log(&self, record: AccessRecord) {
        if self.shared.queue.push(record).is_err() {
            METRICS.access_log_dropped.inc();
        }
    }

    /// Apply a reloaded config: reopen the file, switch the format, enable or disable.
    pub fn reconfigure(&self, conf: &Settings) {
        self.shared.enabled.store(conf.enabled, Ordering::Relaxed);
        *self.shared.pending.lock() = Some(conf.clone());
    }
}

struct Writer {
    conf: Settings,
    out: Box<dyn Write + Send>,
}

impl Writer {
    fn open(conf: &Settings) -> std::io::Result<Writer> {
        let out: Box<dyn Write + Send> = match &conf.path {
            None => Box::new(BufWriter::new(std::io::stdout())),
            Some(p) => Box::new(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
        };
        Ok(Writer {
            conf: conf.clone(),
            out,
        })
    }

    fn run(&mut self, shared: &Shared) {
        let mut line = String::with_capacity(256);
        loop {
            if let Some(conf) = shared.pending.lock().take() {
                let _ = self.out.flush();
                match Writer::open(&conf) {
                    Ok(w) => *self = w,
                    Err(e) => log::error!(
                        "access log: cannot open {:?}: {e}; keeping the previous file",
                        conf.path
                    ),
                }
            }
            let mut wrote = false;
            while let Some(r) = shared.queue.pop() {
                line.clear();
                format_record(&r, self.conf.format, &mut line);
                if self.out.write_all(line.as_bytes()).is_err() {
                    METRICS.access_log_dropped.inc();
                }
                wrote = true;
            }
            if wrote {
                let _ = self.out.flush();
            }
            std::thread::sleep(DRAIN_INTERVAL);
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Append one newline-terminated line for `r` to `out`.
pub fn format_record(r: &AccessRecord, format: Format, out: &mut String) {
    use std::fmt::Write as _;
    let client = r.client.map(|c| c.to_string());
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "time": rfc3339(r.time),
                "client": client,
                "method": r.method.as_str(),
                "uri": r.uri.to_string(),
                "host": r.host,
                "status": r.status,
                "route": r.route.as_deref(),
                "upstream": r.upstream.as_deref(),
                "cache": r.cache,
                "etag": r.etag,
                "bytes": r.body_bytes,
                "upstream_time": r.upstream_seconds,
                "total_time": r.total_seconds,
            });
            let _ = writeln!(out, "{v}");
        }
        Format::Text => {
            let dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
            let _ = writeln!(
                out,
                "{} {} \"{} {}\" host={} status={} route={} upstream={} cache={} etag={} bytes={} upstream_time={} total_time={:.6}",
                rfc3339(r.time),
                dash(client.as_deref()),
                r.method,
                r.uri.to_string().replace('"', "%22").replace(' ', "%20"),
                dash(Some(&r.host)),
                r.status,
                dash(r.route.as_deref()),
                dash(r.upstream.as_deref()),
                r.cache,
                r.etag,
                r.body_bytes,
                r.upstream_seconds
                    .map(|s| format!("{s:.6}"))
                    .unwrap_or_else(|| "-".to_string()),
                r.total_seconds,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            time: SystemTime::UNIX_EPOCH,
            client: Some(IpAddr::from([127, 0, 0, 1])),
            method: http::Method::GET,
            uri: "/a%20b?x=1".parse().expect("uri"),
            host: "example.com".into(),
            status: 304,
            route: Some("default".into()),
            upstream: None,
            cache: "hit",
            etag: "computed",
            body_bytes: 0,
            upstream_seconds: None,
            total_seconds: 0.000125,
        }
    }

    #[test]
    fn text_lines_have_every_field() {
        let mut line = String::new();
        format_record(&record(), Format::Text, &mut line);
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z 127.0.0.1 \"GET /a%20b?x=1\" host=example.com status=304 route=default upstream=- cache=hit etag=computed bytes=0 upstream_time=- total_time=0.000125\n"
        );
    }

    #[test]
    fn json_lines_parse_back() {
        let mut line = String::new();
        format_record(&record(), Format::Json, &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["status"], 304);
        assert_eq!(v["cache"], "hit");
        assert!(v["upstream_time"].is_null());
        assert!(v["upstream"].is_null());
    }

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let shared = Shared {
            queue: ArrayQueue::new(2),
            enabled: AtomicBool::new(true),
            pending: Mutex::new(None),
        };
        let logger = AccessLogger {
            shared: Arc::new(shared),
            writer: Arc::new(Mutex::new(None)),
        };
        let before = METRICS.access_log_dropped.get();
        for _ in 0..5 {
            logger.log(record());
        }
        assert_eq!(METRICS.access_log_dropped.get() - before, 3);
    }
}
