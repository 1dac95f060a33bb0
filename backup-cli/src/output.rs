//! Output formats: every report a person reads also has a JSON and a YAML form for scripts.

use std::io::Write;

use serde::Serialize;

/// How a command prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Table,
    /// JSON, one document.
    Json,
    /// YAML, one document.
    Yaml,
}

impl OutputFormat {
    /// Prints `report` to stdout: as JSON or YAML, or as the text `table` renders.
    pub fn print<T: Serialize>(self, report: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
        let text = match self {
            OutputFormat::Table => table(report),
            OutputFormat::Json => serde_json::to_string_pretty(report)? + "\n",
            OutputFormat::Yaml => serde_yaml_ng::to_string(report)?,
        };
        std::io::stdout().lock().write_all(text.as_bytes())?;
        Ok(())
    }
}
