//! etagate-demo-origin: a deliberately naive application server to put etagate in front of.
//!
//! Like most app servers it sends no `ETag` and no `Last-Modified`. Pages:
//! - `/`           an index (cacheable for a minute)
//! - `/cacheable`  a stable page any shared cache may keep for five minutes
//! - `/private`    a page for one user (`Cache-Control: private`, sets a cookie)
//! - `/changing`   different content on every request, no caching headers at all
//! - `/large`      a 4 MiB body (larger than etagate's default ETag buffer)

use async_trait::async_trait;
use clap::Parser;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(
    name = "etagate-demo-origin",
    about = "A naive origin server (no validators) for trying etagate"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: String,
}

const LARGE_BODY_BYTES: usize = 4 << 20;

struct Demo {
    hits: AtomicU64,
    large: Vec<u8>,
}

fn page(
    status: StatusCode,
    content_type: &str,
    cache: Option<&str>,
    body: Vec<u8>,
) -> Response<Vec<u8>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len());
    if let Some(cc) = cache {
        b = b.header("cache-control", cc);
    }
    b.body(body).unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for Demo {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let n = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
        let path = session.req_header().uri.path().to_string();
        let html = "text/html; charset=utf-8";
        match path.as_str() {
            "/" => page(
                StatusCode::OK,
                html,
                Some("public, max-age=60"),
                b"<!doctype html><title>demo origin</title><h1>etagate demo origin</h1>\
                  <ul><li><a href=/cacheable>/cacheable</a><li><a href=/private>/private</a>\
                  <li><a href=/changing>/changing</a><li><a href=/large>/large</a></ul>\n"
                    .to_vec(),
            ),
            "/cacheable" => page(
                StatusCode::OK,
                html,
                Some("public, max-age=300"),
                b"<!doctype html><title>cacheable</title><p>The same bytes for everyone, for five minutes.</p>\n".to_vec(),
            ),
            "/private" => {
                let mut r = page(
                    StatusCode::OK,
                    html,
                    Some("private, max-age=60"),
                    b"<!doctype html><title>private</title><p>Your account page.</p>\n".to_vec(),
                );
                r.headers_mut().insert(
                    http::header::SET_COOKIE,
                    http::HeaderValue::from_static("session=demo; Path=/; HttpOnly"),
                );
                r
            }
            "/changing" => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                page(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    None,
                    format!("request {n} at {now}\n").into_bytes(),
                )
            }
            "/large" => page(
                StatusCode::OK,
                "application/octet-stream",
                Some("public, max-age=300"),
                self.large.clone(),
            ),
            _ => page(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                None,
                b"not found\n".to_vec(),
            ),
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let large = (0..LARGE_BODY_BYTES).map(|i| (i % 251) as u8).collect();
    let conf = ServerConf {
        threads: 1,
        pid_file: std::env::temp_dir()
            .join(format!("etagate-demo-origin-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: std::env::temp_dir()
            .join(format!("etagate-demo-origin-{}.sock", std::process::id()))
            .display()
            .to_string(),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = Service::new(
        "demo origin".to_string(),
        Demo {
            hits: AtomicU64::new(0),
            large,
        },
    );
    service.add_tcp(&args.listen);
    server.add_service(service);
    eprintln!("etagate-demo-origin listening on http://{}", args.listen);
    server.run_forever();
}
