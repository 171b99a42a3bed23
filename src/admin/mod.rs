//! The admin listener: operator endpoints, never on a public listener.
//!
//! | endpoint | auth | what |
//! |---|---|---|
//! | `GET /metrics` | none | Prometheus text format |
//! | `GET /healthz` | none | 200 while the process runs |
//! | `GET /readyz` | none | 200 when the config is loaded and listeners accept; 503 while draining |
//! | `POST /reload` | bearer token | re-read and apply the config file |
//! | `POST /purge` | bearer token | purge by URL, URL prefix or cache tag, hard or soft ([`crate::control::purge`]) |
//!
//! Reading endpoints are open because load balancers and Prometheus must reach them and they
//! reveal nothing beyond aggregate counts (no URLs, no client addresses); anything that changes
//! state needs `Authorization: Bearer <token>` with the token from `admin.token_file`, and is
//! refused (403) when no token is configured.

use crate::control::Control;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use std::sync::Arc;

/// Largest request body the admin endpoints read (purge lists).
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub struct AdminApp {
    control: Arc<Control>,
}

impl AdminApp {
    pub fn new(control: Arc<Control>) -> Self {
        AdminApp { control }
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Vec<u8>> {
    let body = body.into().into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Vec<u8>> {
    json_text(status, value.to_string())
}

/// A JSON answer from its text (a struct serialized directly keeps its field order).
fn json_text(status: StatusCode, text: String) -> Response<Vec<u8>> {
    let body = format!("{text}\n").into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// `None` when the request carries the configured bearer token (compared in constant time),
/// else the refusal to send.
fn refusal(session: &ServerSession, token: Option<&str>) -> Option<Response<Vec<u8>>> {
    let Some(token) = token else {
        return Some(text(
            StatusCode::FORBIDDEN,
            "this endpoint is disabled: set admin.token_file in the configuration\n",
        ));
    };
    let given = session
        .get_header(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes()) {
        None
    } else {
        let mut r = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        Some(r)
    }
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ADMIN_BODY {
                    return Err(format!("body larger than {MAX_ADMIN_BODY} bytes\n"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("cannot read body: {e}\n")),
        }
    }
}

impl AdminApp {
    async fn reload(&self) -> Response<Vec<u8>> {
        let control = self.control.clone();
        let result = tokio::task::spawn_blocking(move || control.reload()).await;
        match result {
            Ok(Ok(report)) => json(
                StatusCode::OK,
                serde_json::json!({
                    "result": "applied",
                    "generation": report.generation,
                    "needs_upgrade": report.needs_upgrade,
                }),
            ),
            Ok(Err(errors)) => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({
                    "result": "rejected",
                    "generation": self.control.live.snapshot().generation,
                    "errors": errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                }),
            ),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reload failed: {e}\n"),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let token = self.control.live.snapshot().admin_token.clone();
        match (method, path.as_str()) {
            (Method::GET, "/metrics") => {
                self.control.cache.store.publish_metrics();
                crate::metrics::METRICS
                    .ready
                    .set(self.control.state.ready() as i64);
                let body = crate::metrics::METRICS.render();
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                    .header("cache-control", "no-store")
                    .header("content-length", body.len())
                    .body(body)
                    .unwrap_or_else(|_| Response::new(Vec::new()))
            }
            (Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (Method::GET, "/readyz") => {
                if self.control.state.ready() {
                    text(StatusCode::OK, "ready\n")
                } else if self.control.state.draining() {
                    text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
                }
            }
            (Method::POST, "/reload") => match refusal(session, token.as_deref()) {
                Some(r) => r,
                None => self.reload().await,
            },
            (Method::POST, "/purge") => match refusal(session, token.as_deref()) {
                Some(r) => r,
                None => match read_body(session).await {
                    Err(e) => text(StatusCode::BAD_REQUEST, e),
                    Ok(body) => self.purge(body).await,
                },
            },
            (_, "/metrics" | "/healthz" | "/readyz" | "/reload" | "/purge") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; endpoints: /metrics /healthz /readyz /reload /purge\n",
            ),
        }
    }
}

impl AdminApp {
    /// Apply a purge here and, in a fleet, on every other member; the answer lists each
    /// node's result. A prefix purge visits every stored URL, so it runs off the admin thread.
    async fn purge(&self, body: Vec<u8>) -> Response<Vec<u8>> {
        let control = self.control.clone();
        let shared = bytes::Bytes::from(body);
        let mine = shared.clone();
        let local = match tokio::task::spawn_blocking(move || control.purge_request(&mine)).await {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            Err(e) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("purge failed: {e}\n"),
                )
            }
        };
        let Some(fleet) = &self.control.fleet else {
            return json(StatusCode::OK, local);
        };
        let mut nodes = vec![serde_json::json!({
            "node": fleet.node().as_ref(),
            "ok": true,
            "seconds": 0.0,
            "report": local.clone(),
        })];
        nodes.extend(self.control.purge_fleet(shared).await);
        let mut answer = local;
        answer["nodes"] = serde_json::Value::Array(nodes);
        json(StatusCode::OK, answer)
    }
}
