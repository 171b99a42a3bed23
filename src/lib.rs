//! etagate: an HTTP gateway on Pingora that makes every origin speak conditional HTTP.
//!
//! The request's journey through the source, and its layers (each module uses only modules
//! listed below it; `docs/architecture.md` has the picture, `tests/architecture.rs` checks it):
//! - [`server`]: process lifecycle (start, reload, upgrade, drain);
//! - [`admin`]: the operator listener;
//! - [`proxy`]: the `ProxyHttp` phases, a thin conductor;
//! - [`control`]: operator controls and readiness, shared by the three above;
//! - [`runtime`]: the checked config instantiated (servers, load balancers, metric handles),
//!   swapped on reload;
//! - [`access_log`]: one line per request, written off the request path;
//! - [`cache`]: the shared cache on pingora-cache (storage, keys, entries);
//! - [`config`]: the YAML file, checked into a model without I/O;
//! - [`metrics`]: Prometheus metrics;
//! - [`http`]: HTTP semantics as pure functions (validators, preconditions, freshness, ranges).

pub mod access_log;
pub mod admin;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod runtime;
pub mod server;
