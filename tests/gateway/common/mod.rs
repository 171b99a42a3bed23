//! Test harness: the real `etagate` binary as a child process, real origins, a real client.
//! Everything listens on 127.0.0.1 with ephemeral ports.

#![allow(dead_code)]

pub mod origin;
pub mod raw;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use origin::{Origin, Reply, Seen};

/// A free loopback port for a process the harness starts.
///
/// Taken from below the kernel's ephemeral range (32768+ on Linux) and handed out once per
/// test process: a port merely bound and released in the ephemeral range can be given to
/// another test's origin or outgoing connection before the gateway binds it, which made
/// parallel tests fail now and then with "Address already in use".
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Spread concurrent test processes over the span so they do not probe the same ports.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() % 97) * 120,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

pub fn etagate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_etagate")
}

/// Run `etagate` with arguments to completion (for `-t`).
pub fn run_etagate(args: &[&str]) -> Output {
    Command::new(etagate_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run etagate")
}

/// A running gateway process; stopped (SIGKILL) when dropped.
pub struct Gateway {
    pub child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

/// The parts of a config file the harness owns (ports, process paths, access log).
pub struct Ports {
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            port: free_port(),
            admin_port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// YAML for `listeners`, `admin` and `server`, to prepend to a test's own sections.
    pub fn preamble(&self) -> String {
        let d = self.dir.path().display();
        format!(
            "listeners:\n  - address: 127.0.0.1:{}\nadmin:\n  address: 127.0.0.1:{}\n  token_file: {d}/token\nserver:\n  threads: 2\n  pid_file: {d}/etagate.pid\n  upgrade_socket: {d}/upgrade.sock\n  grace_period: 1s\n  shutdown_timeout: 1s\naccess_log:\n  path: {d}/access.log\n",
            self.port, self.admin_port
        )
    }
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

impl Gateway {
    /// Start with `body` (upstreams, routes, ...) after the harness's preamble.
    pub async fn start(body: &str) -> Gateway {
        let ports = Ports::new();
        let config = format!("{}{}", ports.preamble(), body);
        Gateway::start_with(ports, &config, &[]).await
    }

    /// One upstream `app` at `origin`, one catch-all route with `route_extra` YAML lines
    /// (indented 4 spaces) and top-level `extra` sections.
    pub async fn single(origin: &Origin, route_extra: &str, extra: &str) -> Gateway {
        let body = format!(
            "upstreams:\n  app:\n    servers: [{}]\n    timeout: {{ connect: 1s, read: 5s }}\nroutes:\n  - name: main\n    upstream: app\n{route_extra}{extra}",
            origin.addr_string()
        );
        Gateway::start(&body).await
    }

    /// Start with a complete config text.
    pub async fn start_with(ports: Ports, config: &str, extra_args: &[&str]) -> Gateway {
        std::fs::write(ports.dir.path().join("token"), ADMIN_TOKEN).expect("write token");
        let config_path = ports.dir.path().join("etagate.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = ports.dir.path().join("stderr.log");
        let mut gw = Gateway {
            child: None,
            port: ports.port,
            admin_port: ports.admin_port,
            config_path,
            log_path,
            dir: ports.dir,
        };
        gw.spawn(extra_args);
        gw.wait_ready().await;
        gw
    }

    /// Start in quick mode.
    pub async fn quick(upstreams: &[&Origin]) -> Gateway {
        let ports = Ports::new();
        let listen = format!("127.0.0.1:{}", ports.port);
        let admin = format!("127.0.0.1:{}", ports.admin_port);
        let mut args = vec!["--listen".to_string(), listen, "--admin".to_string(), admin];
        for o in upstreams {
            args.push("--upstream".to_string());
            args.push(o.addr_string());
        }
        let log_path = ports.dir.path().join("stderr.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(etagate_bin())
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("ETAGATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .current_dir(ports.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etagate");
        let mut gw = Gateway {
            child: Some(child),
            port: ports.port,
            admin_port: ports.admin_port,
            config_path: PathBuf::new(),
            log_path,
            dir: ports.dir,
        };
        gw.wait_ready().await;
        gw
    }

    pub fn spawn(&mut self, extra_args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let child = Command::new(etagate_bin())
            .arg("-c")
            .arg(&self.config_path)
            .args(extra_args)
            .env(
                "RUST_LOG",
                std::env::var("ETAGATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etagate");
        self.child = Some(child);
    }

    /// Wait until `/readyz` says ready (listeners accept, config loaded).
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(self.admin_url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "etagate exited ({status}) before becoming ready; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "etagate did not become ready; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Replace the config file (for reload tests).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write config");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The text of `GET /metrics` on the admin listener, once the counters have settled.
    ///
    /// etagate counts a request just after writing its response (the request total last), so
    /// a client can hold the response before it is counted. Scraping until two scrapes 50 ms
    /// apart agree on `etagate_requests_total` makes the counts match what the client saw.
    pub async fn scrape(&self) -> String {
        let mut last = self.scrape_once().await;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let next = self.scrape_once().await;
            let settled = metric_value(&next, "etagate_requests_total", &[])
                == metric_value(&last, "etagate_requests_total", &[]);
            last = next;
            if settled {
                break;
            }
        }
        last
    }

    async fn scrape_once(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text")
    }

    /// The metric's value in a scrape, summed over series matching all `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.scrape().await, name, labels)
    }
}

/// Sum of a metric's samples whose labels include all of `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let ok = labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- etagate log (last 40 lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A client that keeps connections alive and never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// The blake3 content ETag etagate gives a body: `"b3-` + base64url(first 16 bytes) + `"`.
pub fn content_etag(body: &[u8]) -> String {
    use base64::Engine;
    let hash = blake3::hash(body);
    format!(
        "\"b3-{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash.as_bytes()[..16])
    )
}

/// One HTTP/1.1 connection to the gateway and nothing else: a pooling client would hide a
/// connection the gateway closed by opening another, a test using this one sees it.
pub struct SingleConn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
}

impl SingleConn {
    pub async fn open(port: u16) -> SingleConn {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the gateway");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        SingleConn { sender }
    }

    /// GET `path` and read the whole response; `None` when the gateway closed the connection
    /// instead of answering.
    pub async fn get(&mut self, path: &str) -> Option<http::Response<bytes::Bytes>> {
        use http_body_util::BodyExt;
        self.sender.ready().await.ok()?;
        let req = http::Request::get(path)
            .header("host", "gateway.test")
            .body(http_body_util::Empty::new())
            .expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(10), self.sender.send_request(req))
            .await
            .expect("the gateway answers within 10 s")
            .ok()?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("the whole body").to_bytes();
        Some(http::Response::from_parts(parts, body))
    }
}
