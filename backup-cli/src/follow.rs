//! Following an object the Cairn server works on (`--wait`), with the same progress display as standalone
//! runs.

use std::{io::IsTerminal, time::Duration};

use backup_core::client::{CairnObject, ServerApi};
use kube::ResourceExt;
use tokio::sync::watch;

use crate::progress::{Describe, ProgressView};

/// How often a followed object is read.
const EVERY: Duration = Duration::from_secs(1);

/// Where an object the server works on stands.
#[derive(Debug, Clone, Default)]
pub struct ServerProgress {
    /// Its phase.
    pub phase: &'static str,
    /// Objects done.
    pub done: u64,
    /// Objects selected so far.
    pub total: u64,
}

impl Describe for ServerProgress {
    fn describe(&self, seconds: f64) -> String {
        let rate = if seconds > 0.0 { self.done as f64 / seconds } else { 0.0 };
        format!("{}, {}/{} objects ({rate:.0}/s)", self.phase, self.done, self.total)
    }
}

/// Follows `object` until `finished` says so, showing `progress` under `label`; returns its last state.
pub async fn follow<K: CairnObject>(
    server: &ServerApi,
    label: &str,
    object: &K,
    progress: impl Fn(&K) -> ServerProgress,
    finished: impl Fn(&K) -> bool,
) -> anyhow::Result<K> {
    if std::io::stderr().is_terminal() {
        eprintln!("Waiting for {label} to end; Ctrl-C stops the waiting, not the work on the server.");
    }
    let (sender, receiver) = watch::channel(progress(object));
    let view = ProgressView::start(label, receiver);
    let result = server
        .follow(&object.name_any(), EVERY, None, |current: &K| {
            sender.send_replace(progress(current));
            finished(current)
        })
        .await;
    view.finish().await;
    Ok(result?)
}
