//! Integration tests: the real `etagate` binary over loopback HTTP, against real origins.

mod common;

mod cache;
mod compression;
mod conditional;
mod config_errors;
mod disk;
mod foundation;
mod hostile;
mod limits;
mod metrics;
mod origin_faults;
mod purge;
mod reload;
mod tls;
