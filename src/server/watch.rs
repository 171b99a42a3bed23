//! `server.watch_config`: reload when the config file, or a file it names, changes.
//!
//! The directories holding those files are watched (inotify on Linux, through `notify`), not
//! the files: an editor or a deploy tool replaces a file by renaming another over it, and
//! Kubernetes updates a mounted ConfigMap or Secret by swapping the `..data` symlink in the
//! mount directory, leaving the file's own path untouched. An event counts when it names one
//! of the files, or an entry starting with `..` (Kubernetes' swap) in one of their
//! directories. Events are collapsed until [`QUIET`] passes without one, then one reload runs,
//! exactly like SIGHUP: a bad change is rejected, counted and logged, and the running config
//! stays. After each reload the watched set follows the files the config in use names.

use crate::control::Control;
use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A burst of events (a write in several pieces, a symlink swap) is one change once this
/// passes without another.
const QUIET: Duration = Duration::from_millis(300);
/// Events buffered between reloads; more are dropped, a reload being due anyway.
const QUEUE: usize = 256;

pub struct ConfigWatch {
    control: Arc<Control>,
}

impl ConfigWatch {
    pub fn new(control: Arc<Control>) -> ConfigWatch {
        ConfigWatch { control }
    }

    fn files(&self) -> Vec<PathBuf> {
        self.control.live.snapshot().config.watched_files()
    }
}

/// The directory a file lives in (`.` for a bare name).
fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether an event on `path` concerns one of `files`: the file itself, or a `..` entry (a
/// Kubernetes volume update) in the directory of one.
fn concerns(path: &Path, files: &[PathBuf]) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    files.iter().any(|f| {
        let same_dir = dir_of(f)
            .canonicalize()
            .ok()
            .zip(dir.canonicalize().ok())
            .is_some_and(|(a, b)| a == b);
        same_dir && (f.file_name() == Some(name) || name.to_string_lossy().starts_with(".."))
    })
}

fn relevant(event: &notify::Event, files: &[PathBuf]) -> bool {
    !event.kind.is_access() && event.paths.iter().any(|p| concerns(p, files))
}

struct Watching {
    watcher: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl Watching {
    /// Watch the directories of `files`, and only those.
    fn follow(&mut self, files: &[PathBuf]) {
        let wanted: BTreeSet<PathBuf> = files.iter().map(|f| dir_of(f)).collect();
        for gone in self.dirs.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        for new in wanted.difference(&self.dirs) {
            if let Err(e) = self.watcher.watch(new, RecursiveMode::NonRecursive) {
                log::error!(
                    "config watch: cannot watch {}: {e}; changes there need SIGHUP",
                    new.display()
                );
            }
        }
        self.dirs = wanted;
    }
}

#[async_trait]
impl BackgroundService for ConfigWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = mpsc::channel::<notify::Event>(QUEUE);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let _ = tx.try_send(event);
            }
        });
        let mut watching = match watcher {
            Ok(watcher) => Watching {
                watcher,
                dirs: BTreeSet::new(),
            },
            Err(e) => {
                log::error!("config watch: cannot start: {e}; reload with SIGHUP instead");
                return;
            }
        };
        let mut files = self.files();
        watching.follow(&files);
        log::info!(
            "config watch: reloading when any of {} changes",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                _ = shutdown.changed() => return,
            };
            let Some(event) = event else {
                return;
            };
            if !relevant(&event, &files) {
                continue;
            }
            // Collapse the burst this event starts (other files in these directories, such as
            // a log being written, neither count nor delay it).
            let mut quiet_at = tokio::time::Instant::now() + QUIET;
            loop {
                tokio::select! {
                    e = rx.recv() => match e {
                        Some(e) if relevant(&e, &files) => quiet_at = tokio::time::Instant::now() + QUIET,
                        Some(_) => {}
                        None => return,
                    },
                    _ = tokio::time::sleep_until(quiet_at) => break,
                }
            }
            log::info!(
                "config watch: {} changed; reloading the configuration",
                event
                    .paths
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            let control = self.control.clone();
            let _ = tokio::task::spawn_blocking(move || control.reload()).await;
            files = self.files();
            watching.follow(&files);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_count_for_the_files_and_kubernetes_swaps_in_their_directories() {
        let dir = tempfile::tempdir().expect("dir");
        let other = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let files = vec![d.join("etagate.yaml"), d.join("token")];
        for (path, expect) in [
            (d.join("etagate.yaml"), true),
            (d.join("token"), true),
            (d.join("..data"), true),
            (d.join("..2026_12_01_10_00_00.123"), true),
            (d.join("access.log"), false),
            (d.join(".etagate.yaml.swp"), false),
            (other.path().join("etagate.yaml"), false),
        ] {
            assert_eq!(concerns(&path, &files), expect, "{}", path.display());
        }
    }
}
