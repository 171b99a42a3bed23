use clap::Parser;
use std::process::ExitCode;

/// Every request allocates headers, tasks and buffers; under pass-through load glibc's malloc
/// took about 15 % of the core (perf), mimalloc's thread-local free lists much less.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Pingora's connector logs a benign connection-pool race ("failed to acquire reusable
    // stream", after which it simply opens a new connection) at error level; upstream failures
    // that matter are logged by etagate with their route and upstream. RUST_LOG overrides.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,pingora_core::connectors=off"),
    )
    .init();
    let cli = etagate::cli::Cli::parse();
    if !cli.test {
        // SIGHUP's default action ends the process; claim it before anything can send one.
        // The reload task listens for it later.
        etagate::server::tasks::claim_sighup();
    }
    etagate::server::run(cli)
}
