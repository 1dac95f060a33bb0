//! Progress of long operations: a live line on a terminal (objects, rate, lists, bytes), plain lines every
//! few seconds otherwise.

use std::{io::IsTerminal, time::Duration};

use backup_core::backup::BackupProgress;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::{sync::watch, task::JoinHandle};

use crate::output::human_bytes;

/// Seconds between plain progress lines when stderr is not a terminal.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// A running progress display.
pub struct ProgressView {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

fn describe(progress: &BackupProgress, seconds: f64) -> String {
    let rate = if seconds > 0.0 { progress.items as f64 / seconds } else { 0.0 };
    format!(
        "{} objects ({rate:.0}/s), {}/{} lists, {}",
        progress.items,
        progress.lists_done,
        progress.lists_total,
        human_bytes(progress.bytes)
    )
}

impl ProgressView {
    /// Starts showing `receiver`'s updates under `label` on stderr.
    pub fn start(label: &str, mut receiver: watch::Receiver<BackupProgress>) -> ProgressView {
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
                    bar.set_message(describe(&receiver.borrow(), started.elapsed().as_secs_f64()));
                }
                bar.finish_and_clear();
            } else {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(PLAIN_INTERVAL) => {},
                        _ = stopped.changed() => break,
                    }
                    eprintln!("{label}: {}", describe(&receiver.borrow(), started.elapsed().as_secs_f64()));
                }
            }
        });
        ProgressView { task, stop }
    }

    /// Stops the display.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
