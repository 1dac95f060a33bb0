//! Progress of long operations: a live line on a terminal, plain lines every few seconds otherwise.

use std::{io::IsTerminal, time::Duration};

use backup_core::{backup::BackupProgress, restore::RestoreProgress};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::{sync::watch, task::JoinHandle};

use crate::output::human_bytes;

/// Seconds between plain progress lines when stderr is not a terminal.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Counters that can be shown as one line, given the seconds elapsed.
pub(crate) trait Describe: Clone + Send + Sync + 'static {
    /// The line.
    fn describe(&self, seconds: f64) -> String;
}

fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

impl Describe for BackupProgress {
    fn describe(&self, seconds: f64) -> String {
        format!(
            "{} objects ({:.0}/s), {}/{} lists, {}",
            self.items,
            rate(self.items, seconds),
            self.lists_done,
            self.lists_total,
            human_bytes(self.bytes)
        )
    }
}

impl Describe for RestoreProgress {
    fn describe(&self, seconds: f64) -> String {
        format!("{}/{} objects ({:.0}/s)", self.done, self.total, rate(self.done, seconds))
    }
}

/// A running progress display.
pub(crate) struct ProgressView {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl ProgressView {
    /// Starts showing `receiver`'s updates under `label` on stderr.
    pub(crate) fn start<T: Describe>(label: &str, mut receiver: watch::Receiver<T>) -> ProgressView {
        let (stop, mut stopped) = watch::channel(false);
        let label = label.to_owned();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            if std::io::stderr().is_terminal() {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]").expect("valid template"),
                );
                bar.set_prefix(label);
                bar.enable_steady_tick(Duration::from_millis(120));
                loop {
                    tokio::select! {
                        changed = receiver.changed() => if changed.is_err() { break },
                        _ = stopped.changed() => break,
                    }
                    bar.set_message(receiver.borrow().describe(started.elapsed().as_secs_f64()));
                }
                bar.finish_and_clear();
            } else {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(PLAIN_INTERVAL) => {},
                        _ = stopped.changed() => break,
                    }
                    eprintln!("{label}: {}", receiver.borrow().describe(started.elapsed().as_secs_f64()));
                }
            }
        });
        ProgressView { task, stop }
    }

    /// Stops the display.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
