//! Background work: SIGHUP, the readiness probe, drain detection, upstream health checks.

use crate::config::model::Listener;
use crate::control::{Control, ProcessState};
use crate::runtime::LiveConfig;
use async_trait::async_trait;
use pingora_core::server::{ExecutionPhase, ShutdownWatch};
use pingora_core::services::background::BackgroundService;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// SIGHUP reloads, the readiness probe, and marking the process as draining when Pingora starts
/// an upgrade hand-over or a shutdown.
pub struct Lifecycle {
    control: Arc<Control>,
    phases: parking_lot::Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
    listeners: Vec<Listener>,
}

impl Lifecycle {
    pub fn new(
        control: Arc<Control>,
        phases: broadcast::Receiver<ExecutionPhase>,
        listeners: Vec<Listener>,
    ) -> Self {
        Lifecycle {
            control,
            phases: parking_lot::Mutex::new(Some(phases)),
            listeners,
        }
    }
}

/// Where to connect to reach a listener bound to `addr` (a wildcard is reached on loopback).
fn probe_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.control.access_log.spawn_writer();
        // Here, not at start-up: `-d` forks before services start, and the store's threads
        // must be the daemon's (the store may still be held by the process being upgraded;
        // it is taken in the background).
        if let Some(disk) = self.control.cache.disk {
            disk.start();
        }
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP, reload only via the admin endpoint: {e}");
                None
            }
        };
        let mut phases = self.phases.lock().take();

        // Ready once every public listener accepts connections.
        let state = self.control.state.clone();
        let probes: Vec<SocketAddr> = self
            .listeners
            .iter()
            .map(|l| probe_address(l.address))
            .collect();
        tokio::spawn(async move {
            for addr in probes {
                while tokio::net::TcpStream::connect(addr).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            state.set_listeners_bound();
            log::info!("listeners accepting connections; ready");
        });

        loop {
            tokio::select! {
                _ = async { match hangup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => {
                    log::info!("SIGHUP received: reloading the configuration");
                    let control = self.control.clone();
                    // Validation reads files and resolves names: keep it off the async workers.
                    let _ = tokio::task::spawn_blocking(move || control.reload()).await;
                }
                phase = async { match phases.as_mut() { Some(p) => p.recv().await.ok(), None => std::future::pending().await } } => {
                    match phase {
                        Some(ExecutionPhase::GracefulUpgradeTransferringFds)
                        | Some(ExecutionPhase::GracefulTerminate)
                        | Some(ExecutionPhase::ShutdownStarted) => {
                            if !self.control.state.draining() {
                                log::info!("draining: finishing requests in flight, closing idle connections");
                            }
                            self.control.state.set_draining();
                        }
                        Some(_) => {}
                        None => phases = None,
                    }
                }
                _ = shutdown.changed() => {
                    self.control.state.set_draining();
                    return;
                }
            }
        }
    }
}

/// Runs each upstream's health check at its interval, always against the current config, so
/// upstreams added by a reload are checked and removed ones are not.
pub struct HealthChecks {
    live: Arc<LiveConfig>,
}

impl HealthChecks {
    pub fn new(live: Arc<LiveConfig>) -> Self {
        HealthChecks { live }
    }
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut last_run: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let config = self.live.snapshot();
            for (name, upstream) in &config.upstreams {
                let Some(interval) = upstream.spec.health_check.as_ref().map(|h| h.interval) else {
                    continue;
                };
                let due = last_run.get(name).is_none_or(|t| t.elapsed() >= interval);
                if due {
                    last_run.insert(name.clone(), Instant::now());
                    upstream.lb.backends().run_health_check(true).await;
                }
            }
        }
    }
}

/// The fleet's upkeep: each peer probed every `cluster.probe_interval`, the DNS name (if
/// any) resolved every `cluster.dns.interval`. Both read the interval anew on every round, so
/// a reload applies at the next one.
pub struct FleetUpkeep {
    fleet: Arc<crate::cluster::Fleet>,
}

impl FleetUpkeep {
    pub fn new(fleet: Arc<crate::cluster::Fleet>) -> Self {
        FleetUpkeep { fleet }
    }
}

#[async_trait]
impl BackgroundService for FleetUpkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut last_resolve: Option<Instant> = None;
        loop {
            let (probe_every, dns_every) = {
                let s = self.fleet.settings();
                (
                    s.spec.probe_interval,
                    s.spec.dns.as_ref().map(|d| d.interval),
                )
            };
            if dns_every.is_some_and(|every| last_resolve.is_none_or(|t| t.elapsed() >= every)) {
                last_resolve = Some(Instant::now());
                self.fleet.resolve().await;
            }
            self.fleet.probe_all().await;
            tokio::select! {
                _ = tokio::time::sleep(probe_every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Replace SIGHUP's default action (terminate) with tokio's handler before the server starts,
/// so a reload signal that arrives during start-up is not fatal. Tokio keeps a signal handler
/// for the life of the process once registered.
pub fn claim_sighup() {
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        rt.block_on(async {
            if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                log::warn!("cannot install the SIGHUP handler: {e}");
            }
        });
    }
}

/// Pingora's signals, with a drain step before a graceful stop: on SIGTERM etagate first
/// reports not ready and closes connections after their current response for `drain`, so load
/// balancers move traffic away while every request is still answered; only then does Pingora
/// stop accepting (and give requests in flight its own grace period). SIGQUIT (hand the sockets
/// to a new process) and SIGINT (stop now) keep Pingora's meaning.
pub struct DrainingSignals {
    pub state: Arc<ProcessState>,
    pub drain: Duration,
    /// Handed to the new process on SIGQUIT, closed on a stop.
    pub disk: Option<&'static crate::cache::disk::DiskStore>,
}

impl DrainingSignals {
    /// Release the disk tier (off the async threads: it waits for queued writes).
    async fn release_disk(&self) {
        if let Some(d) = self.disk {
            let _ = tokio::task::spawn_blocking(move || d.release()).await;
        }
    }
}

#[async_trait]
impl pingora_core::server::ShutdownSignalWatch for DrainingSignals {
    async fn recv(&self) -> pingora_core::server::ShutdownSignal {
        use pingora_core::server::ShutdownSignal;
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            log::error!("cannot listen for shutdown signals; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = quit.recv() => {
                self.state.set_draining();
                // The new process waits for the store: hand it over now, not after the drain.
                self.release_disk().await;
                ShutdownSignal::GracefulUpgrade
            }
            _ = term.recv() => {
                self.state.set_draining();
                log::info!("SIGTERM received: draining for {:?} before closing the listeners", self.drain);
                let signal = tokio::select! {
                    _ = tokio::time::sleep(self.drain) => ShutdownSignal::GracefulTerminate,
                    _ = int.recv() => ShutdownSignal::FastShutdown,
                };
                self.release_disk().await;
                signal
            }
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}
