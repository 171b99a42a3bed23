//! Process lifecycle: build Pingora's server from the config, run it, reload it, hand it over.
//!
//! - [`tasks`]: background work (signals, readiness probe, drain detection, health checks).
//!
//! Pingora owns SIGQUIT (graceful upgrade: listening sockets go to the new process over the
//! upgrade socket), SIGTERM (graceful stop) and SIGINT (fast stop). etagate adds SIGHUP: reload
//! the config file in place.

pub mod connections;
pub mod tasks;
pub mod watch;

use crate::access_log::AccessLogger;
use crate::admin::AdminApp;
use crate::cache::SharedCache;
use crate::cli::Cli;
use crate::cluster::Fleet;
use crate::config::{self, ConfigErrors};
use crate::control::{Control, ProcessState};
use crate::metrics::METRICS;
use crate::proxy::budget::BufferBudget;
use crate::proxy::Gateway;
use crate::runtime::instantiate::instantiate;
use crate::runtime::tls::ListenerCerts;
use crate::runtime::{LiveConfig, RuntimeConfig};
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

/// Bytes a client connection's writer gathers before a syscall. Pingora's default (one
/// segment, 1460 bytes) sends a header on its own whenever the body does not fit beside it,
/// so a 16 KiB cache hit costs two writes and two wakeups of the client; with room for a
/// header and a 16 KiB body the whole response leaves in one write. The buffer is allocated
/// per connection but its pages are only touched by responses that use them; bodies larger
/// than it are written straight through, as before.
const DOWNSTREAM_WRITE_BUFFER: usize = 32 * 1024;

/// No read buffer under a client connection (Pingora's default is 64 KiB, allocated and
/// zeroed at accept): Pingora's HTTP/1 session reads a request into its own buffer, and HTTP/2
/// and TLS keep theirs, so this one only copied bytes twice and made every idle connection
/// cost 64 KiB more (issue #15: 123 KiB per idle connection before, `docs/performance-notes.md`).
const DOWNSTREAM_READ_BUFFER: usize = 0;

/// Load the configuration named on the command line (a file, or quick mode's flags), check it
/// and instantiate it.
pub fn load(cli: &Cli) -> Result<RuntimeConfig, ConfigErrors> {
    let checked = match (&cli.conf, &cli.listen) {
        (Some(path), _) => config::load_file(path),
        (None, Some(listen)) => config::quick_mode(listen, &cli.upstream, cli.admin.as_deref()),
        (None, None) => Err(ConfigErrors::single(config::ConfigError {
            file: "command line".to_string(),
            position: None,
            message: "no configuration: pass -c FILE, or --listen ADDR --upstream ADDR for quick mode (see --help)".to_string(),
        })),
    }?;
    instantiate(checked, None)
}

fn pingora_conf(cfg: &RuntimeConfig, cli: &Cli) -> ServerConf {
    let s = &cfg.config.server;
    let mut conf = ServerConf {
        threads: s.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_socket.clone(),
        grace_period_seconds: Some(s.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout.as_secs_f64().ceil() as u64),
        ca_file: s.ca_file.clone(),
        daemon: cli.daemon,
        ..ServerConf::default()
    };
    conf.version = 1;
    conf
}

/// Run etagate until it is told to stop. Returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    let cfg = match load(&cli) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    if cli.test {
        let name = cli
            .conf
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "command line".to_string());
        println!("{name}: configuration is valid");
        return ExitCode::SUCCESS;
    }

    if !cli.upgrade {
        // Pingora retries a taken port forever; say what is wrong and stop instead. (With -u
        // the sockets come from the running process, which of course still holds them.)
        let mut addresses: Vec<std::net::SocketAddr> =
            cfg.config.listeners.iter().map(|l| l.address).collect();
        addresses.push(cfg.config.admin.address);
        addresses.extend(cfg.config.cluster.as_ref().map(|c| c.listen));
        for addr in addresses {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                eprintln!(
                    "cannot listen on {addr}: {e}; another process holds it (another etagate, or Prometheus, whose default port is 9090): stop it or change the address"
                );
                return ExitCode::from(1);
            }
        }
    }
    let access_log = match AccessLogger::open(&cfg.access_log) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "cannot open the access log {:?}: {e}; fix access_log.path",
                cfg.access_log.path
            );
            return ExitCode::from(1);
        }
    };
    let opt = Opt {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let conf = pingora_conf(&cfg, &cli);
    let listeners = cfg.config.listeners.clone();
    let admin_address = cfg.config.admin.address;
    let cache_settings = cfg.config.cache.clone();
    let drain_period = cfg.config.server.grace_period;
    let etag_budget = cfg.config.etag_buffer_budget;
    let cfg_cluster = cfg.config.cluster.clone();
    let cfg_secret = cfg.cluster_secret.clone();
    let watch_config = cfg.config.server.watch_config;
    let mut certs = ListenerCerts::default();
    let mut resolvers = BTreeMap::new();
    for (address, first) in &cfg.listener_certs {
        resolvers.insert(*address, certs.add(*address, first.clone()));
    }
    let live = LiveConfig::new(cfg);

    let mut server = Server::new_with_opt_and_conf(opt, conf);
    let phases = server.watch_execution_phase();
    server.bootstrap();

    let state = Arc::new(ProcessState::default());
    let mut cache = SharedCache::new(
        cache_settings.budget,
        cache_settings.max_object_size,
        cache_settings.lock_timeout,
    );
    if let Some(disk) = &cache_settings.disk {
        cache = cache.with_disk(disk);
    }
    let disk_store = cache.disk;
    let cache = Arc::new(cache);
    let buffers = Arc::new(BufferBudget::default());
    METRICS.etag_buffer_budget_bytes.set(etag_budget as i64);
    let fleet = match (&cfg_cluster, &cfg_secret) {
        (Some(spec), Some(secret)) => Some(Arc::new(Fleet::new(spec, secret))),
        _ => None,
    };
    let mut control = Control::new(
        live.clone(),
        access_log.clone(),
        state.clone(),
        cache.clone(),
    );
    if let Some(f) = &fleet {
        control = control.with_fleet(f.clone());
    }
    let control = Arc::new(control.with_listener_certs(certs));

    let mut gateway = Gateway::new(live.clone(), access_log, state.clone(), cache, buffers);
    let mut peers = None;
    if let (Some(f), Some(spec)) = (&fleet, &cfg_cluster) {
        gateway = gateway.in_fleet(f.clone(), control.clone());
        // The same connection cap and header deadline as the public listener: connections
        // are accepted before a member proves itself, so a flood of them must be bounded here
        // too.
        let mut service = Service::new(
            "etagate peers".to_string(),
            connections::ConnectionGate::new(
                pingora_proxy::http_proxy(&server.configuration, gateway.for_peers()),
                live.clone(),
            ),
        );
        service.add_tcp(&spec.listen.to_string());
        peers = Some(service);
    }
    let mut app = pingora_proxy::http_proxy(&server.configuration, gateway);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    app.server_options = Some(options);
    let mut proxy = Service::new(
        "etagate".to_string(),
        connections::ConnectionGate::new(app, live.clone()),
    );
    for l in &listeners {
        let addr = l.address.to_string();
        let endpoint = ListenerConfig::tcp(addr.as_str()).l4_buffer(L4BufferSettings::new(
            DOWNSTREAM_READ_BUFFER,
            DOWNSTREAM_WRITE_BUFFER,
        ));
        match resolvers.get(&l.address) {
            None => proxy.add_listener(endpoint),
            // No files here: the resolver holds the certificate, so a reload can replace it.
            Some(resolver) => match TlsSettings::intermediate("", "") {
                Ok(mut settings) => {
                    settings.set_cert_resolver(resolver.clone());
                    settings.enable_h2();
                    proxy.add_listener(endpoint.tls(settings));
                }
                Err(e) => {
                    eprintln!("listener {addr}: cannot set up TLS: {e}");
                    return ExitCode::from(1);
                }
            },
        }
    }
    let mut admin = Service::new("etagate admin".to_string(), AdminApp::new(control.clone()));
    admin.add_tcp(&admin_address.to_string());
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    if let (Some(service), Some(f)) = (peers, &fleet) {
        server.add_service(service);
        server.add_service(background_service(
            "fleet upkeep",
            tasks::FleetUpkeep::new(f.clone()),
        ));
    }
    server.add_service(background_service(
        "lifecycle",
        tasks::Lifecycle::new(control.clone(), phases, listeners),
    ));
    server.add_service(background_service(
        "health checks",
        tasks::HealthChecks::new(live),
    ));
    if watch_config {
        server.add_service(background_service(
            "config watch",
            watch::ConfigWatch::new(control.clone()),
        ));
    }
    log::info!("etagate {} starting", env!("CARGO_PKG_VERSION"));
    server.run(RunArgs {
        shutdown_signal: Box::new(tasks::DrainingSignals {
            state,
            drain: drain_period,
            disk: disk_store,
        }),
    });
    ExitCode::SUCCESS
}
