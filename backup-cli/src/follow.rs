//! Following an object the Cairn server works on (`--wait`), with the same progress display as standalone
//! runs; the wait ends when the object finishes, when `--timeout` passes, or when the server stops running.

use std::{io::IsTerminal, time::Duration};

use crate::client::{CairnObject, ClientError, ServerApi};
use anyhow::Context;
use kube::ResourceExt;
use tokio::{sync::watch, time::Instant};

use crate::progress::{Describe, ProgressView};

/// How often a followed object is read.
const EVERY: Duration = Duration::from_secs(1);

/// How often, while waiting, the CLI checks that a server still runs.
const LIVENESS_EVERY: Duration = Duration::from_secs(15);

/// How long no server may run before the wait ends: a restarting server or a new leader has this long.
const LIVENESS_GRACE: Duration = Duration::from_secs(30);

/// Where an object the server works on stands.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerProgress {
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
/// Gives up after `timeout`, or when no server has run for [`LIVENESS_GRACE`].
pub(crate) async fn follow<K: CairnObject>(
    server: &ServerApi,
    label: &str,
    object: &K,
    timeout: Option<Duration>,
    progress: impl Fn(&K) -> ServerProgress,
    finished: impl Fn(&K) -> bool,
) -> anyhow::Result<K> {
    if std::io::stderr().is_terminal() {
        eprintln!("Waiting for {label} to end; Ctrl-C stops the waiting, not the work on the server.");
    }
    let (sender, receiver) = watch::channel(progress(object));
    let view = ProgressView::start(label, receiver);
    let name = object.name_any();
    let following = server.follow(&name, EVERY, timeout, |current: &K| {
        sender.send_replace(progress(current));
        finished(current)
    });
    let result = tokio::select! {
        result = following => result,
        stopped = server_stopped(server) => Err(stopped),
    };
    view.finish().await;
    result.with_context(|| format!("stopped waiting for {label}"))
}

/// Resolves when no server has run in the namespace for [`LIVENESS_GRACE`]: checked every
/// [`LIVENESS_EVERY`]. Other failures of the check are left to the following itself.
pub(crate) async fn server_stopped(server: &ServerApi) -> ClientError {
    let mut down_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(LIVENESS_EVERY).await;
        match server.check_server_running().await {
            Err(error @ ClientError::NotRunning { .. }) => {
                if down_since.get_or_insert_with(Instant::now).elapsed() >= LIVENESS_GRACE {
                    return error;
                }
            }
            _ => down_since = None,
        }
    }
}
