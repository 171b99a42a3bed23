//! Metrics and the access log: exact counts for a known sequence of requests, the exposition
//! format as promtool sees it, a real Prometheus server scraping etagate, and the docs.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{name} is missing: run scripts/install-deps.sh test (Debian's prometheus package)"
    );
    path
}

#[tokio::test]
async fn counters_match_a_known_sequence_of_requests_exactly() {
    let o = Origin::start(|s| match s.uri.as_str() {
        "/private" => Reply::ok("private page").header("cache-control", "private"),
        _ => Reply::ok("0123456789").header("cache-control", "max-age=600"),
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    // 2 misses
    let first = http.get(gw.url("/a")).send().await.expect("miss a");
    let tag = first.headers()["etag"].to_str().expect("ascii").to_string();
    http.get(gw.url("/b")).send().await.expect("miss b");
    // 5 hits: 3 plain, 2 answered with 304
    for _ in 0..3 {
        http.get(gw.url("/a")).send().await.expect("hit");
    }
    for _ in 0..2 {
        let r = http
            .get(gw.url("/b"))
            .header("if-none-match", content_etag(b"0123456789"))
            .send()
            .await
            .expect("304");
        assert_eq!(r.status(), 304);
    }
    // 1 uncacheable, answered 304 after an origin fetch
    let r = http
        .get(gw.url("/private"))
        .header("if-none-match", content_etag(b"private page"))
        .send()
        .await
        .expect("origin 304");
    assert_eq!(r.status(), 304);
    // 1 failed precondition from the cache
    let r = http
        .get(gw.url("/a"))
        .header("if-match", "\"nope\"")
        .send()
        .await
        .expect("412");
    assert_eq!(r.status(), 412);
    // 1 bypass (unsafe method)
    http.post(gw.url("/form"))
        .body("x")
        .send()
        .await
        .expect("post");
    let _ = tag;

    let route = [("route", "main")];
    let m = |name: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let gw = &gw;
        async move {
            let mut labels = vec![("route", "main")];
            labels.extend_from_slice(extra);
            gw.metric(name, &labels).await
        }
    };
    assert_eq!(
        m("etagate_cache_requests_total", &[("outcome", "miss")]).await,
        2.0
    );
    assert_eq!(
        m("etagate_cache_requests_total", &[("outcome", "hit")]).await,
        6.0,
        "3 + 2 304s + 1 412"
    );
    assert_eq!(
        m(
            "etagate_cache_requests_total",
            &[("outcome", "uncacheable")]
        )
        .await,
        1.0
    );
    assert_eq!(
        m("etagate_cache_requests_total", &[("outcome", "bypass")]).await,
        1.0
    );
    assert_eq!(
        m("etagate_not_modified_total", &[("source", "cache")]).await,
        2.0
    );
    assert_eq!(
        m("etagate_not_modified_total", &[("source", "origin")]).await,
        1.0
    );
    assert_eq!(m("etagate_precondition_failed_total", &[]).await, 1.0);
    assert_eq!(
        m("etagate_not_modified_saved_bytes_total", &[]).await,
        (2 * 10 + "private page".len()) as f64
    );
    assert_eq!(gw.metric("etagate_requests_total", &route).await, 10.0);
    assert_eq!(
        m("etagate_requests_total", &[("status_class", "3xx")]).await,
        3.0
    );
    assert_eq!(
        m("etagate_requests_total", &[("status_class", "4xx")]).await,
        1.0
    );
    assert_eq!(
        m("etagate_requests_total", &[("status_class", "2xx")]).await,
        6.0
    );
    assert_eq!(m("etagate_request_duration_seconds_count", &[]).await, 10.0);
    // body bytes: 2 misses + 3 hits of 10 bytes, and the POST's body
    assert_eq!(m("etagate_response_body_bytes_total", &[]).await, 60.0);
    assert_eq!(
        gw.metric(
            "etagate_origin_requests_total",
            &[("upstream", "app"), ("outcome", "2xx")]
        )
        .await,
        4.0,
        "2 misses, the private page and the POST"
    );
    assert_eq!(gw.metric("etagate_content_etags_total", &route).await, 3.0);
    assert_eq!(gw.metric("etagate_cache_objects", &[]).await, 2.0);
    assert_eq!(gw.metric("etagate_config_generation", &[]).await, 1.0);
}

#[tokio::test]
async fn promtool_accepts_a_live_scrape() {
    let promtool = tool("promtool");
    let o = Origin::fixed("x", &[("cache-control", "max-age=60")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    for _ in 0..3 {
        http.get(gw.url("/p")).send().await.expect("request");
    }
    let text = gw.scrape().await;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server on loopback, scraping etagate's admin listener every second.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    async fn start(target_port: u16) -> Prometheus {
        let bin = tool("prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: etagate\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("config");
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client()
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .await
            {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "Prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        p
    }

    /// The value of an instant PromQL query (`None` when it returns no sample).
    async fn query(&self, promql: &str) -> Option<f64> {
        let r: serde_json::Value = client()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", promql)])
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        assert_eq!(r["status"], "success", "{r}");
        r["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// Wait until the query returns at least `want`.
    async fn wait_for(&self, promql: &str, want: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.query(promql).await.unwrap_or(-1.0);
            if v >= want {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} stayed at {v}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_etagate_and_sees_the_hit_counter_rise() {
    let o = Origin::fixed("observed", &[("cache-control", "max-age=600")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let prom = Prometheus::start(gw.admin_port).await;
    let hits = "sum(etagate_cache_requests_total{outcome=\"hit\"})";
    prom.wait_for("up{job=\"etagate\"}", 1.0).await;
    let before = prom.wait_for(hits, 0.0).await;
    assert_eq!(before, 0.0);
    let http = client();
    for _ in 0..6 {
        http.get(gw.url("/watched")).send().await.expect("request");
    }
    let after = prom.wait_for(hits, 5.0).await;
    assert_eq!(after, 5.0, "one miss, then five hits");
    let misses = prom
        .query("sum(etagate_cache_requests_total{outcome=\"miss\"})")
        .await
        .expect("misses");
    assert_eq!(misses, 1.0);
    let info = prom.query("etagate_build_info").await.expect("build info");
    assert_eq!(info, 1.0);
}

#[tokio::test]
async fn the_metrics_reference_lists_exactly_the_exported_metrics() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let mut documented: Vec<String> = doc
        .lines()
        .filter(|l| l.starts_with('|'))
        // Series that only exist on a fleet member are checked by the fleet tests.
        .filter(|l| !l.contains("| Fleet only:"))
        .filter_map(|l| {
            let cell = l.split('|').nth(1)?.trim();
            let name = cell.trim_matches('`');
            (name.starts_with("etagate_") && cell.starts_with('`')).then(|| name.to_string())
        })
        .collect();
    documented.sort();
    documented.dedup();
    let o = Origin::fixed("x", &[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let text = gw.scrape().await;
    let types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut exported: Vec<String> = types
        .iter()
        .filter(|n| n.starts_with("etagate_"))
        .map(|n| n.to_string())
        .collect();
    exported.sort();
    assert_eq!(
        documented, exported,
        "docs/metrics.md and the exported metrics differ"
    );
    for process in types.iter().filter(|n| n.starts_with("process_")) {
        assert!(
            doc.contains(process),
            "docs/metrics.md does not mention {process}"
        );
    }
    assert!(types.contains(&"process_resident_memory_bytes"));
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_with_its_facts() {
    let o = Origin::fixed("logged", &[("cache-control", "max-age=600")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    http.get(gw.url("/log?x=1")).send().await.expect("miss");
    http.get(gw.url("/log?x=1")).send().await.expect("hit");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = gw.access_log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("\"GET /log?x=1\"") && lines[0].contains("status=200"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("route=main upstream=app cache=miss etag=computed bytes=6"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("upstream=- cache=hit etag=stored"),
        "{}",
        lines[1]
    );
    assert!(lines[0].contains("upstream_time=0.") && lines[1].contains("upstream_time=-"));
}

#[tokio::test]
async fn the_access_log_can_be_json() {
    let o = Origin::fixed("json", &[]).await;
    let ports = Ports::new();
    let config =
        format!(
        "{}upstreams:\n  app: {{ servers: [{}] }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        ports.preamble().replace("access_log:\n", "access_log:\n  format: json\n"),
        o.addr
    );
    let gw = Gateway::start_with(ports, &config, &[]).await;
    client().get(gw.url("/j")).send().await.expect("request");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = gw.access_log();
    let line = log.lines().next().expect("a line");
    let v: serde_json::Value = serde_json::from_str(line).expect("json line");
    assert_eq!(v["uri"], "/j");
    assert_eq!(v["status"], 200);
    assert_eq!(v["route"], "main");
}

#[tokio::test]
async fn a_full_access_log_queue_drops_and_counts_lines_instead_of_blocking() {
    let o = Origin::fixed("fast", &[("cache-control", "max-age=600")]).await;
    // A log that cannot keep up: a FIFO nobody reads blocks the writer on its first line.
    let ports = Ports::new();
    let fifo = ports.dir.path().join("stuck.log");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    // Keep a reader open (without reading) so opening for writing does not block start-up.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .expect("open fifo");
    let config = format!(
        "{}upstreams:\n  app: {{ servers: [{}] }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        ports.preamble().replace(
            &format!("path: {}/access.log", ports.dir.path().display()),
            &format!("path: {}\n  buffer: 4", fifo.display()),
        ),
        o.addr
    );
    let gw = Gateway::start_with(ports, &config, &[]).await;
    // Every request completes (the client gives up after 20 s, so a blocked request fails).
    let http = client();
    for _ in 0..3000 {
        let r = http.get(gw.url("/q")).send().await.expect("request");
        assert_eq!(r.status(), 200);
    }
    let dropped = gw.metric("etagate_access_log_dropped_total", &[]).await;
    assert!(dropped > 0.0, "lines were dropped once the queue was full");
}
