//! The access log: one line per request, written off the request path.
//!
//! Requests hand a finished [`AccessRecord`] to a bounded queue with `try_send`; a dedicated
//! thread formats and writes. When the writer falls behind the queue fills, new lines are dropped
//! and counted (`etagate_access_log_dropped_total`): a slow disk never slows a request.
//! A reload reopens the file (so logrotate works with `systemctl reload`) and applies the format.

use crate::config::runtime::AccessLog;
use crate::config::schema::AccessLogFormat;
use crate::metrics::METRICS;
use parking_lot::Mutex;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What one request did, as the log records it.
#[derive(Debug, Clone, Default)]
pub struct AccessRecord {
    pub time: Option<SystemTime>,
    pub client: String,
    pub method: String,
    pub uri: String,
    pub host: String,
    pub status: u16,
    pub route: String,
    pub upstream: String,
    /// Cache outcome (`hit`, `miss`, ...), `-` when the cache was not involved.
    pub cache: &'static str,
    /// Where the response's ETag came from: `origin`, `computed`, `stored` or `-`.
    pub etag: &'static str,
    pub body_bytes: u64,
    /// Time waiting for the origin's response header, if the origin was asked.
    pub upstream_seconds: Option<f64>,
    pub total_seconds: f64,
}

enum Message {
    Line(Box<AccessRecord>),
    Reconfigure(AccessLog),
}

/// The sending side, shared by all requests.
#[derive(Clone)]
pub struct AccessLogger {
    tx: Arc<Mutex<Option<SyncSender<Message>>>>,
}

impl AccessLogger {
    /// Start the writer thread for `conf`. A disabled log still starts it (so a reload can enable
    /// it) but requests skip it.
    pub fn start(conf: &AccessLog) -> std::io::Result<AccessLogger> {
        let (tx, rx) = sync_channel(conf.buffer.max(1));
        let mut writer = Writer::open(conf)?;
        std::thread::Builder::new()
            .name("etagate-access-log".to_string())
            .spawn(move || writer.run(rx))?;
        Ok(AccessLogger {
            tx: Arc::new(Mutex::new(Some(tx))),
        })
    }

    /// Queue a line; never waits.
    pub fn log(&self, record: AccessRecord) {
        let guard = self.tx.lock();
        let Some(tx) = guard.as_ref() else { return };
        match tx.try_send(Message::Line(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                METRICS.access_log_dropped.inc();
            }
        }
    }

    /// Apply a reloaded config: reopen the file, switch the format. The queue size stays as it
    /// was at start.
    pub fn reconfigure(&self, conf: &AccessLog) {
        if let Some(tx) = self.tx.lock().as_ref() {
            // A full queue must not block a reload; the writer also reopens on its next line
            // only if told, so use a blocking send with the queue's natural drain.
            let _ = tx.send(Message::Reconfigure(conf.clone()));
        }
    }
}

struct Writer {
    conf: AccessLog,
    out: Box<dyn Write + Send>,
}

impl Writer {
    fn open(conf: &AccessLog) -> std::io::Result<Writer> {
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

    fn run(&mut self, rx: Receiver<Message>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Message::Line(r)) => {
                    if self.conf.enabled {
                        let line = format_record(&r, self.conf.format);
                        if self.out.write_all(line.as_bytes()).is_err() {
                            METRICS.access_log_dropped.inc();
                        }
                    }
                }
                Ok(Message::Reconfigure(conf)) => {
                    let _ = self.out.flush();
                    match Writer::open(&conf) {
                        Ok(w) => *self = w,
                        Err(e) => log::error!(
                            "access log: cannot open {:?}: {e}; keeping the previous file",
                            conf.path
                        ),
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.out.flush();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.out.flush();
                    return;
                }
            }
        }
    }
}

fn rfc3339(t: Option<SystemTime>) -> String {
    humantime::format_rfc3339_millis(t.unwrap_or_else(SystemTime::now)).to_string()
}

/// One line, newline-terminated.
pub fn format_record(r: &AccessRecord, format: AccessLogFormat) -> String {
    match format {
        AccessLogFormat::Json => {
            let v = serde_json::json!({
                "time": rfc3339(r.time),
                "client": r.client,
                "method": r.method,
                "uri": r.uri,
                "host": r.host,
                "status": r.status,
                "route": r.route,
                "upstream": r.upstream,
                "cache": r.cache,
                "etag": r.etag,
                "bytes": r.body_bytes,
                "upstream_time": r.upstream_seconds,
                "total_time": r.total_seconds,
            });
            format!("{v}\n")
        }
        AccessLogFormat::Text => format!(
            "{} {} \"{} {}\" host={} status={} route={} upstream={} cache={} etag={} bytes={} upstream_time={} total_time={:.6}\n",
            rfc3339(r.time),
            if r.client.is_empty() { "-" } else { &r.client },
            r.method,
            r.uri.replace(['"', ' '], "%20"),
            if r.host.is_empty() { "-" } else { &r.host },
            r.status,
            if r.route.is_empty() { "-" } else { &r.route },
            if r.upstream.is_empty() { "-" } else { &r.upstream },
            r.cache,
            r.etag,
            r.body_bytes,
            r.upstream_seconds
                .map(|s| format!("{s:.6}"))
                .unwrap_or_else(|| "-".to_string()),
            r.total_seconds,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            time: Some(SystemTime::UNIX_EPOCH),
            client: "127.0.0.1".into(),
            method: "GET".into(),
            uri: "/a b".into(),
            host: "example.com".into(),
            status: 304,
            route: "default".into(),
            upstream: "app".into(),
            cache: "hit",
            etag: "computed",
            body_bytes: 0,
            upstream_seconds: None,
            total_seconds: 0.000125,
        }
    }

    #[test]
    fn text_lines_have_every_field_and_no_raw_spaces_in_the_uri() {
        let line = format_record(&record(), AccessLogFormat::Text);
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z 127.0.0.1 \"GET /a%20b\" host=example.com status=304 route=default upstream=app cache=hit etag=computed bytes=0 upstream_time=- total_time=0.000125\n"
        );
    }

    #[test]
    fn json_lines_parse_back() {
        let line = format_record(&record(), AccessLogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["status"], 304);
        assert_eq!(v["cache"], "hit");
        assert!(v["upstream_time"].is_null());
    }
}
