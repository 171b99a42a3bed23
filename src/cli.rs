//! Command-line interface.

use clap::Parser;
use std::path::PathBuf;

/// etagate: an HTTP gateway that gives every response a strong content ETag, answers
/// conditional requests with 304/412, and caches what RFC 9111 lets a shared cache store.
///
/// Run with a configuration file (`-c conf/etagate.yaml`), or in quick mode with
/// `--listen` and `--upstream` and every policy at its documented default.
///
/// Signals: SIGHUP reloads the configuration file in place; SIGQUIT hands the listening
/// sockets to a new process started with `-u` (zero-downtime upgrade); SIGTERM stops
/// gracefully; SIGINT stops at once.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "etagate", version, about, long_about)]
pub struct Cli {
    /// YAML configuration file (see docs/configuration.md).
    #[arg(short = 'c', long = "conf", value_name = "FILE", conflicts_with_all = ["listen", "upstream", "admin"])]
    pub conf: Option<PathBuf>,

    /// Check the configuration and exit: 0 when valid, 1 with located errors otherwise.
    #[arg(short = 't', long = "test")]
    pub test: bool,

    /// Run in the background (the pid goes to server.pid_file).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Take over the listening sockets of a running etagate over server.upgrade_socket; send
    /// that process SIGQUIT next (zero-downtime upgrade).
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,

    /// Quick mode: the public listener, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR", requires = "upstream")]
    pub listen: Option<String>,

    /// Quick mode: an origin server, e.g. 127.0.0.1:8000 (repeat for load balancing).
    #[arg(long, value_name = "ADDR", requires = "listen")]
    pub upstream: Vec<String>,

    /// Quick mode: the admin listener (metrics, health). Default 127.0.0.1:9090.
    #[arg(long, value_name = "ADDR", requires = "listen")]
    pub admin: Option<String>,
}
