//! Output formats: every report a person reads also has a JSON and a YAML form for scripts.

use std::io::Write;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

/// How a command prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Human-readable text.
    Table,
    /// JSON, one document.
    Json,
    /// YAML, one document.
    Yaml,
}

/// How list commands with a wide table print (`-o table|wide|json|yaml`), as kubectl's `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ListFormat {
    /// The table.
    Table,
    /// The table with more columns.
    Wide,
    /// JSON, one document.
    Json,
    /// YAML, one document.
    Yaml,
}

impl ListFormat {
    /// Prints `report`: as JSON or YAML, or as the text `table` renders (told whether to be wide).
    pub(crate) fn print<T: Serialize>(self, report: &T, table: impl FnOnce(&T, bool) -> String) -> anyhow::Result<()> {
        match self {
            ListFormat::Table => write_out(&table(report, false)),
            ListFormat::Wide => write_out(&table(report, true)),
            ListFormat::Json => write_document(report, Document::Json),
            ListFormat::Yaml => write_document(report, Document::Yaml),
        }
    }
}

impl OutputFormat {
    /// Prints `report` to stdout: as JSON or YAML, or as the text `table` renders.
    pub(crate) fn print<T: Serialize>(self, report: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
        match self {
            OutputFormat::Table => write_out(&table(report)),
            OutputFormat::Json => write_document(report, Document::Json),
            OutputFormat::Yaml => write_document(report, Document::Yaml),
        }
    }
}

/// Set when stdout is kept for one document (`cairn node remove` prints a shell script there): reports of
/// the commands it runs on the way (a backup's) then go to stderr.
static STDOUT_RESERVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, [`write_out`] writes to stderr; [`write_reserved`] alone writes to stdout.
pub(crate) fn reserve_stdout() {
    STDOUT_RESERVED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The document forms of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Document {
    /// JSON, indented, with a final newline.
    Json,
    /// YAML.
    Yaml,
}

/// Writes `report` as a JSON or YAML document where [`write_out`] writes, serialized straight into the
/// stream: a large report (an inventory of thousands of images) is never held as text as well.
pub(crate) fn write_document<T: Serialize>(report: &T, form: Document) -> anyhow::Result<()> {
    let reserved = STDOUT_RESERVED.load(std::sync::atomic::Ordering::SeqCst);
    let sink: Box<dyn Write> =
        if reserved { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    let mut sink = std::io::BufWriter::new(sink);
    // A closed pipe must stay an io::Error in the chain (`is_broken_pipe`): serde's own errors hide it.
    let io = |kind: Option<std::io::ErrorKind>| kind.map(|k| anyhow::Error::from(std::io::Error::from(k)));
    match form {
        Document::Json => {
            serde_json::to_writer_pretty(&mut sink, report)
                .map_err(|e| io(e.io_error_kind()).unwrap_or_else(|| e.into()))?;
            sink.write_all(b"\n")?;
        }
        Document::Yaml => serde_yaml_ng::to_writer(&mut sink, report).map_err(|e| {
            let kind = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>()).map(|e| e.kind());
            io(kind).unwrap_or_else(|| e.into())
        })?,
    }
    sink.flush()?;
    Ok(())
}

/// Writes `text` to stdout (to stderr once [`reserve_stdout`] was called). A reader that went away
/// (`cairn ... | head`) gives an error that `main` turns into a quiet exit 0, as ripgrep does; `print!`
/// would panic instead.
pub(crate) fn write_out(text: &str) -> anyhow::Result<()> {
    if STDOUT_RESERVED.load(std::sync::atomic::Ordering::SeqCst) {
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(text.as_bytes())?;
        return Ok(stderr.flush()?);
    }
    write_reserved(text)
}

/// Writes `text` to stdout, reserved or not.
pub(crate) fn write_reserved(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Whether `error` comes from writing to a pipe whose reader has gone.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Rows aligned in columns, kubectl style.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let mut writer = tabwriter::TabWriter::new(Vec::new()).padding(3);
    for row in rows {
        let _ = writeln!(writer, "{}", row.join("\t"));
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A byte count for people: `512 B`, `3.2 KiB`, `41.0 MiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A Kubernetes time for tables: `2026-01-02 03:04:05 UTC`, or `<n/a>` when absent.
pub(crate) fn time_text(time: Option<&Time>) -> String {
    match time {
        Some(time) => time.0.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "<n/a>".into(),
    }
}

/// `object` as printed in JSON and YAML: without `metadata.managedFields`, bookkeeping of the API server's.
pub(crate) fn printable<K: kube::Resource>(mut object: K) -> K {
    object.meta_mut().managed_fields = None;
    object
}

/// A list for people: `a, b`, or `<none>` when empty.
pub(crate) fn list_text(items: &[String]) -> String {
    if items.is_empty() { "<none>".into() } else { items.join(", ") }
}

/// An object's validation errors and failure reason, as lines (empty when it has neither).
pub(crate) fn reasons_text(validation_errors: &[String], failure_reason: Option<&str>) -> String {
    let mut text = String::new();
    if !validation_errors.is_empty() {
        text.push_str("Validation errors:\n");
        for error in validation_errors {
            text.push_str(&format!("  {error}\n"));
        }
    }
    if let Some(reason) = failure_reason {
        text.push_str(&format!("Failure: {reason}\n"));
    }
    text
}
