//! A backup's own log: timestamped lines kept for the `-logs.gz` file and mirrored to `tracing`. It holds
//! one line per step, type or problem, never one per object.

use jiff::Timestamp;

/// The log of one backup.
#[derive(Debug, Default, Clone)]
pub struct BackupLog {
    lines: Vec<String>,
}

impl BackupLog {
    fn push(&mut self, level: &str, message: &str) {
        self.lines.push(format!("{} {level:<5} {message}", Timestamp::now()));
    }

    /// A step.
    pub fn info(&mut self, message: impl AsRef<str>) {
        tracing::info!("{}", message.as_ref());
        self.push("info", message.as_ref());
    }

    /// A warning.
    pub fn warn(&mut self, message: impl AsRef<str>) {
        tracing::warn!("{}", message.as_ref());
        self.push("warn", message.as_ref());
    }

    /// An error.
    pub fn error(&mut self, message: impl AsRef<str>) {
        tracing::error!("{}", message.as_ref());
        self.push("error", message.as_ref());
    }

    /// The whole log as text.
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}
