//! `cairn backup ...`: flags, validation into requests, and presentation of backups.

use std::{collections::BTreeMap, io::IsTerminal, path::PathBuf};

use anyhow::{Context, bail};
use backup_core::{
    backup::{
        self, BackupError, BackupOutcome, BackupProgress, BackupRecord, BackupRequest, BackupSpec, DEFAULT_TTL, Phase,
    },
    selection::SelectionSpec,
    store::Compression,
};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use tokio::sync::watch;

use crate::{
    connect::Connection,
    output::{OutputFormat, human_bytes, table},
    progress::ProgressView,
    selection::SelectionArgs,
};

/// `cairn backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the cluster's resources (or a selection) into the storage location.
    Create(CreateArgs),
    /// List backups.
    Get {
        /// Only these backups.
        names: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show one backup.
    Describe {
        /// The backup.
        name: String,
        /// Also list every resource, warning and error.
        #[arg(long)]
        details: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Download a backup's archive.
    Download {
        /// The backup.
        name: String,
        /// Where to write it; default `<NAME>-data.tar.zst` (or `.tar.gz`) in the current directory.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print a backup's log.
    Logs {
        /// The backup.
        name: String,
    },
    /// Check a backup's archive against its manifest and record, entry by entry, without restoring.
    Verify {
        /// The backup.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Delete a backup's stored data and record.
    Delete {
        /// The backup.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        confirm: bool,
    },
}

/// Compression choices on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// tar + zstd (default).
    Zstd,
    /// tar + gzip, Velero's format.
    Gzip,
}

/// `cairn backup create` flags (Velero's names).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The backup's name.
    name: String,
    #[command(flatten)]
    selection: SelectionArgs,
    /// How long to keep the backup.
    #[arg(long, default_value = DEFAULT_TTL)]
    ttl: String,
    /// Archive compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Zstd)]
    compression: CompressionArg,
    /// Labels for the backup (key=value, comma-separated).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Wait for completion (the standalone CLI always does; kept for Velero parity).
    #[arg(long)]
    wait: bool,
    /// Output format of the result.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

impl CreateArgs {
    /// Validates the flags into a request.
    fn request(&self, storage_location: String) -> anyhow::Result<BackupRequest> {
        let mut labels = BTreeMap::new();
        for pair in &self.labels {
            let (key, value) = pair.split_once('=').with_context(|| format!("--labels {pair:?}: write key=value"))?;
            labels.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        Ok(BackupRequest {
            name: self.name.clone(),
            spec: BackupSpec {
                selection: self.selection.spec()?,
                ttl: self.ttl.clone(),
                storage_location,
                compression: Some(match self.compression {
                    CompressionArg::Zstd => Compression::Zstd,
                    CompressionArg::Gzip => Compression::Gzip,
                }),
            },
            labels,
        })
    }
}

/// What `backup create` prints.
#[derive(Debug, Serialize)]
struct CreateReport<'a> {
    backup: &'a BackupRecord,
    results: &'a backup::BackupResults,
}

async fn create(args: CreateArgs, connection: &Connection) -> anyhow::Result<bool> {
    let location = connection.location()?;
    let request = args.request(location.to_string())?;
    backup::validate_name(&request.name)?;
    backup_core::duration::parse_duration(&request.spec.ttl).context("--ttl")?;
    let store = location.open(None)?;
    let client = connection.client().await?;
    let (sender, receiver) = watch::channel(BackupProgress::default());
    let view = ProgressView::start(&format!("backup {}", request.name), receiver);
    let result = backup::run_backup(&client, &store, request, &sender).await;
    view.finish().await;
    let BackupOutcome { record, results } = match result {
        Ok(outcome) => outcome,
        Err(error @ BackupError::Failed { .. }) => bail!(error),
        Err(error) => return Err(error.into()),
    };
    args.output.print(&CreateReport { backup: &record, results: &results }, |r| {
        let archive = r.backup.status.archive.as_ref();
        let mut text = format!(
            "Backup {} {}: {} objects, {} warnings, {} errors, archive {} in {}\n",
            r.backup.name(),
            r.backup.status.phase.as_str(),
            r.backup.status.progress.items_backed_up,
            r.backup.status.warnings,
            r.backup.status.errors,
            archive.map(|a| human_bytes(a.size)).unwrap_or_default(),
            r.backup.spec.storage_location,
        );
        let mut rows = vec![vec!["RESOURCE".to_owned(), "OBJECTS".to_owned()]];
        rows.extend(r.results.counts.iter().map(|(kind, n)| vec![format!("  {kind}"), n.to_string()]));
        text.push_str(&table(&rows));
        text.push_str(&problems_text(&r.results.warnings, "Warnings"));
        text.push_str(&problems_text(&r.results.errors, "Errors"));
        text
    })?;
    Ok(record.status.phase == Phase::Completed)
}

fn problems_text(problems: &[backup::Problem], title: &str) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut text = format!("{title}:\n");
    for problem in problems {
        text.push_str(&format!("  {problem}\n"));
    }
    text
}

fn selector_text(spec: &SelectionSpec) -> String {
    let show = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
        backup_core::selection::LabelMatcher::new(s).map(|m| m.query()).unwrap_or_default()
    };
    match (&spec.label_selector, spec.or_label_selectors.as_slice()) {
        (Some(s), _) => show(s),
        (None, []) => "<none>".into(),
        (None, many) => many.iter().map(show).collect::<Vec<_>>().join(" or "),
    }
}

fn backups_table(records: &[BackupRecord]) -> String {
    let mut rows = vec![
        ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE LOCATION", "SELECTOR"]
            .map(String::from)
            .to_vec(),
    ];
    for r in records {
        rows.push(vec![
            r.name().to_owned(),
            r.status.phase.as_str().to_owned(),
            r.status.errors.to_string(),
            r.status.warnings.to_string(),
            r.status.start_timestamp.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            r.status.expiration.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            r.spec.storage_location.clone(),
            selector_text(&r.spec.selection),
        ]);
    }
    table(&rows)
}

/// What `backup describe` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    backup: BackupRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<backup::BackupResults>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_list: Option<BTreeMap<String, Vec<String>>>,
}

fn describe_text(d: &Description) -> String {
    let b = &d.backup;
    let s = &b.spec.selection;
    let list = |v: &[String]| if v.is_empty() { "<none>".to_owned() } else { v.join(", ") };
    let mut text = format!("Name:         {}\nPhase:        {}\n", b.name(), b.status.phase.as_str());
    if let Some(reason) = &b.status.failure_reason {
        text.push_str(&format!("Failure:      {reason}\n"));
    }
    text.push_str(&format!(
        "\nNamespaces:\n  Included:  {}\n  Excluded:  {}\n\nResources:\n  Included:        {}\n  Excluded:        {}\n  Cluster-scoped:  {}\n\nLabel selector:  {}\n\nStorage location:  {}\nTTL:               {}\nCompression:       {}\n\nStarted:    {}\nCompleted:  {}\nExpiration: {}\n\nTotal items to be backed up:  {}\nItems backed up:              {}\nWarnings: {}\nErrors:   {}\n",
        if s.included_namespaces.is_empty() { "*".into() } else { list(&s.included_namespaces) },
        list(&s.excluded_namespaces),
        if s.included_resources.is_empty() { "*".into() } else { list(&s.included_resources) },
        list(&s.excluded_resources),
        match s.include_cluster_resources { Some(true) => "included", Some(false) => "excluded", None => "auto" },
        selector_text(s),
        b.spec.storage_location,
        b.spec.ttl,
        match b.compression() { Compression::Zstd => "zstd", Compression::Gzip => "gzip" },
        b.status.start_timestamp,
        b.status.completion_timestamp.map(|t| t.to_string()).unwrap_or_else(|| "<n/a>".into()),
        b.status.expiration,
        b.status.progress.total_items,
        b.status.progress.items_backed_up,
        b.status.warnings,
        b.status.errors,
    ));
    if let Some(archive) = &b.status.archive {
        text.push_str(&format!(
            "\nArchive: {} entries, {}, SHA-256 {}\n",
            archive.entries,
            human_bytes(archive.size),
            archive.sha256
        ));
    }
    if let Some(results) = &d.results {
        text.push_str(&problems_text(&results.warnings, "\nWarnings"));
        text.push_str(&problems_text(&results.errors, "\nErrors"));
    }
    if let Some(resources) = &d.resource_list {
        text.push_str("\nResource List:\n");
        for (kind, names) in resources {
            text.push_str(&format!("  {kind}:\n"));
            for name in names {
                text.push_str(&format!("    - {name}\n"));
            }
        }
    }
    text
}

async fn delete(name: &str, confirm: bool, connection: &Connection) -> anyhow::Result<()> {
    let store = connection.store()?;
    backup::find_backup(&store, name).await?;
    if !confirm {
        if !std::io::stdin().is_terminal() {
            bail!("deleting backup {name:?} needs confirmation: pass --confirm");
        }
        eprint!("Delete backup {name:?} and all its stored data from {}? (y/N) ", store.location());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not deleted");
        }
    }
    let removed = store.delete_backup(name).await?;
    println!("Backup {name:?} deleted ({removed} files removed from {}).", store.location());
    Ok(())
}

/// Runs a `cairn backup` subcommand. Ok(false) means the command ran but its subject is not sound (a
/// PartiallyFailed backup, a failed verification): exit non-zero.
pub async fn run(command: BackupCommand, connection: &Connection) -> anyhow::Result<bool> {
    match command {
        BackupCommand::Create(args) => create(args, connection).await,
        BackupCommand::Get { names, output } => {
            let store = connection.store()?;
            let mut records = backup::list_backups(&store).await?;
            if !names.is_empty() {
                records.retain(|r| names.iter().any(|n| n == r.name()));
                if let Some(missing) = names.iter().find(|n| !records.iter().any(|r| r.name() == n.as_str())) {
                    bail!("no backup named {missing:?} in {}", store.location());
                }
            }
            output.print(&records, |r| backups_table(r))?;
            Ok(true)
        }
        BackupCommand::Describe { name, details, output } => {
            let store = connection.store()?;
            let record = backup::find_backup(&store, &name).await?;
            let (results, resource_list) = if details {
                let list = match record.status.archive {
                    Some(_) => Some(backup::read_resource_list(&store, &record).await?),
                    None => None,
                };
                (Some(backup::read_results(&store, &record).await?), list)
            } else {
                (None, None)
            };
            output.print(&Description { backup: record, results, resource_list }, describe_text)?;
            Ok(true)
        }
        BackupCommand::Download { name, file, force } => {
            let store = connection.store()?;
            let record = backup::find_backup(&store, &name).await?;
            let extension = match record.compression() {
                Compression::Zstd => "tar.zst",
                Compression::Gzip => "tar.gz",
            };
            let path = file.unwrap_or_else(|| PathBuf::from(format!("{name}-data.{extension}")));
            if path.exists() && !force {
                bail!("{} already exists; pass --force to replace it or -f PATH to write elsewhere", path.display());
            }
            let partial = path.with_extension(format!("{extension}.partial"));
            let mut out =
                tokio::fs::File::create(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
            let bytes = backup::download_archive(&store, &record, &mut out).await;
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(error) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(error.into());
                }
            };
            tokio::io::AsyncWriteExt::flush(&mut out).await?;
            tokio::fs::rename(&partial, &path).await?;
            println!("Backup {name} downloaded to {} ({}).", path.display(), human_bytes(bytes));
            Ok(true)
        }
        BackupCommand::Logs { name } => {
            let store = connection.store()?;
            let record = backup::find_backup(&store, &name).await?;
            print!("{}", backup::read_log(&store, &record).await?);
            Ok(true)
        }
        BackupCommand::Verify { name, output } => {
            let store = connection.store()?;
            let verification = backup::verify_backup(&store, &name).await?;
            output.print(&verification, |v| {
                if v.is_sound() {
                    format!(
                        "Backup {} verified: {} archive entries match the manifest; archive {} with SHA-256 {} matches the record.\n",
                        v.name,
                        v.report.entries_checked,
                        human_bytes(v.report.archive_size),
                        v.report.archive_sha256
                    )
                } else {
                    let mut text = format!("Backup {} FAILED verification: {} problems\n", v.name, v.problems.len());
                    for p in &v.problems {
                        text.push_str(&format!("  {}: {}\n", p.path, p.problem));
                    }
                    text
                }
            })?;
            Ok(verification.is_sound())
        }
        BackupCommand::Delete { name, confirm } => delete(&name, confirm, connection).await.map(|()| true),
    }
}
