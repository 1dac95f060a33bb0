//! `cairn backup ...` standalone: the CLI runs the backup engine itself and reads the storage location.

use crate::output::write_out;
use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context, bail};
use backup_core::backup::{self, BackupError, BackupOutcome, BackupProgress, BackupRecord, BackupRequest, Phase};
use serde::Serialize;
use tokio::sync::watch;

use super::{BackupCommand, CreateArgs, problems_text, selector_text, spec_text};
use crate::{
    confirm::confirm,
    connect::Connection,
    output::{OutputFormat, human_bytes, table},
    progress::ProgressView,
};

/// What `backup create` prints.
#[derive(Debug, Serialize)]
struct CreateReport<'a> {
    backup: &'a BackupRecord,
    results: &'a backup::BackupResults,
}

async fn create(args: CreateArgs, connection: &Connection) -> anyhow::Result<bool> {
    if args.from_schedule.is_some() {
        bail!(
            "--from-schedule needs a Cairn server (schedules are server objects), but cairn is standalone here; give the selection flags instead"
        );
    }
    let Some(name) = args.name.clone() else { bail!("name the backup: `cairn backup create NAME`") };
    if args.spec.storage_location().is_some() {
        bail!(
            "--storage-location names a server's BackupStorageLocation, but cairn is standalone here; pass --storage URL instead"
        );
    }
    let location = connection.location()?;
    let request = BackupRequest { name, spec: args.spec.spec_at(location.to_string())?, labels: args.labels()? };
    backup::validate_name(&request.name)?;
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
    let mut text = format!("Name:         {}\nPhase:        {}\n", b.name(), b.status.phase.as_str());
    if let Some(reason) = &b.status.failure_reason {
        text.push_str(&format!("Failure:      {reason}\n"));
    }
    text.push('\n');
    text.push_str(&spec_text(&b.spec, &b.spec.storage_location));
    text.push_str(&format!(
        "\nStarted:    {}\nCompleted:  {}\nExpiration: {}\n\nTotal items to be backed up:  {}\nItems backed up:              {}\nWarnings: {}\nErrors:   {}\n",
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
        text.push_str(&crate::backup::hooks_text(&results.hooks));
    }
    if let Some(resources) = &d.resource_list {
        text.push_str(&resource_list_text(resources));
    }
    text
}

/// The archived objects per type, as `describe --details` lists them.
pub(super) fn resource_list_text(resources: &BTreeMap<String, Vec<String>>) -> String {
    let mut text = "\nResource List:\n".to_owned();
    for (kind, names) in resources {
        text.push_str(&format!("  {kind}:\n"));
        for name in names {
            text.push_str(&format!("    - {name}\n"));
        }
    }
    text
}

/// What `backup delete` reports per backup.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    name: String,
    files_removed: usize,
    location: String,
}

async fn delete(
    names: &[String],
    confirmed: bool,
    output: OutputFormat,
    connection: &Connection,
) -> anyhow::Result<()> {
    let store = connection.existing_store()?;
    for name in names {
        if backup::find_backup(&store, name).await?.is_velero() {
            bail!(
                "backup {name:?} was written by Velero, which keeps it: delete it with `velero backup delete {name}`"
            );
        }
    }
    let what = super::deletion_subject(names);
    confirm(confirmed, &what, &format!("Delete {what} and all their stored data from {}?", store.location()))?;
    let mut deleted = Vec::with_capacity(names.len());
    for name in names {
        let files_removed = store.delete_backup(name).await?;
        deleted.push(Deleted { name: name.clone(), files_removed, location: store.location().to_string() });
    }
    output.print(&deleted, |deleted| {
        deleted
            .iter()
            .map(|d| format!("Backup {:?} deleted ({} files removed from {}).\n", d.name, d.files_removed, d.location))
            .collect()
    })
}

async fn download(name: &str, file: Option<PathBuf>, force: bool, connection: &Connection) -> anyhow::Result<()> {
    let store = connection.existing_store()?;
    let record = backup::find_backup(&store, name).await?;
    let extension = record.compression().extension();
    let Some(path) = super::download_path(name, file, extension, force)? else {
        crate::output::reserve_stdout();
        backup::download_archive(&store, &record, &mut tokio::io::stdout()).await?;
        return Ok(());
    };
    let partial = path.with_extension(format!("{extension}.partial"));
    let mut out = tokio::fs::File::create(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
    let bytes = match backup::download_archive(&store, &record, &mut out).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error.into());
        }
    };
    tokio::fs::rename(&partial, &path).await?;
    write_out(&format!("Backup {name} downloaded to {} ({}).\n", path.display(), human_bytes(bytes)))?;
    Ok(())
}

/// Runs a `cairn backup` subcommand standalone.
pub(super) async fn run(command: BackupCommand, connection: &Connection) -> anyhow::Result<bool> {
    match command {
        BackupCommand::Create(args) => create(*args, connection).await,
        BackupCommand::Get { names, output } => {
            let store = connection.existing_store()?;
            let listing = backup::list_backups(&store).await?;
            for damaged in &listing.damaged {
                eprintln!("warning: {damaged}");
            }
            let mut records = listing.records;
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
            let store = connection.existing_store()?;
            let record = backup::find_backup(&store, &name).await?;
            let (results, resource_list) = if details {
                let archived = record.status.archive.is_some()
                    || (record.is_velero() && record.status.phase != backup::Phase::Failed);
                let list = match archived {
                    true => Some(backup::read_resource_list(&store, &record).await?),
                    false => None,
                };
                (Some(backup::read_results(&store, &record).await?), list)
            } else {
                (None, None)
            };
            output.print(&Description { backup: record, results, resource_list }, describe_text)?;
            Ok(true)
        }
        BackupCommand::Download { name, file, force } => download(&name, file, force, connection).await.map(|()| true),
        BackupCommand::Logs { name } => {
            let store = connection.existing_store()?;
            let record = backup::find_backup(&store, &name).await?;
            write_out(&backup::read_log(&store, &record).await?)?;
            Ok(true)
        }
        BackupCommand::Verify { name, output } => {
            let store = connection.existing_store()?;
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
        BackupCommand::Delete { names, confirm, output } => {
            delete(&super::distinct(names), confirm, output, connection).await.map(|()| true)
        }
    }
}
