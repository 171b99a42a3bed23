use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = etagate::cli::Cli::parse();
    if !cli.test {
        // SIGHUP's default action ends the process; claim it before anything can send one.
        // The reload task listens for it later.
        etagate::server::tasks::claim_sighup();
    }
    etagate::server::run(cli)
}
