//! `cairn backup ...` with a server: Backup objects in its namespace, their files through DownloadRequests,
//! and deletion through DeleteBackupRequests.

use crate::output::write_out;
use cairn_api::{
    Backup, BackupPhase, Compression, DeleteBackupRequest, DownloadTargetKind, RequestPhase, Schedule, labels,
};
use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context, bail};
use backup_core::{
    backup::{BackupResults, deletion},
    schedule::{backup_name, stamp_backup},
};
use kube::{ResourceExt, api::ObjectMeta};
use serde::Serialize;

use super::{BackupCommand, CreateArgs, check_name, problems_text, selector_text, spec_text, standalone, wait_timeout};
use crate::{
    client::ServerApi,
    confirm::confirm,
    fetch::{self, gunzip_json, gunzip_text},
    follow::{ServerProgress, follow},
    output::{OutputFormat, human_bytes, list_text, printable, table, time_text},
};

/// What `backup create` prints with a server.
#[derive(Debug, Serialize)]
struct CreateReport {
    backup: Backup,
}

fn progress(backup: &Backup) -> ServerProgress {
    let counts = backup.status.as_ref().and_then(|s| s.progress.clone()).unwrap_or_default();
    ServerProgress { phase: backup.phase().as_str(), done: counts.items_backed_up, total: counts.total_items }
}

/// Where the backup goes, for people: the location's name, or `<default>`.
fn location_text(backup: &Backup) -> String {
    if backup.spec.storage_location.is_empty() { "<default>".into() } else { backup.spec.storage_location.clone() }
}

/// The last state of a followed backup, in a few lines.
fn outcome_text(backup: &Backup) -> String {
    let name = backup.name_any();
    let status = backup.status.clone().unwrap_or_default();
    let counts = status.progress.unwrap_or_default();
    let mut text = format!(
        "Backup {name} {}: {} of {} objects, {} warnings, {} errors, in {}\n",
        backup.phase().as_str(),
        counts.items_backed_up,
        counts.total_items,
        status.warnings,
        status.errors,
        location_text(backup),
    );
    text.push_str(&reasons_text(backup));
    text.push_str(&format!("Run `cairn backup describe {name} --details` or `cairn backup logs {name}` for more.\n"));
    text
}

/// Validation errors and the failure reason, if any.
fn reasons_text(backup: &Backup) -> String {
    let Some(status) = &backup.status else { return String::new() };
    crate::output::reasons_text(&status.validation_errors, status.failure_reason.as_deref())
}

/// The Backup `backup create` makes: from the flags, or (`--from-schedule`) from the schedule's template and
/// labels as the server makes it when the schedule fires.
async fn backup_object(args: &CreateArgs, server: &ServerApi) -> anyhow::Result<Backup> {
    let mut backup_labels = args.labels()?;
    let Some(schedule_name) = &args.from_schedule else {
        let Some(name) = args.name.clone() else { bail!("name the backup: `cairn backup create NAME`") };
        check_name("backup", &name)?;
        let spec = args.spec.server_spec()?;
        if let Some(location) = args.spec.storage_location() {
            backup_labels.insert(labels::STORAGE_LOCATION.to_owned(), location.to_owned());
        }
        let metadata = ObjectMeta {
            name: Some(name),
            labels: (!backup_labels.is_empty()).then_some(backup_labels),
            ..ObjectMeta::default()
        };
        return Ok(Backup { metadata, spec, status: None });
    };
    if !args.spec.is_empty() {
        bail!(
            "--from-schedule takes the spec of schedule {schedule_name:?}: drop the selection, --ttl, --storage-location and --compression flags, or back up without --from-schedule"
        );
    }
    let schedule = server.get::<Schedule>(schedule_name).await?;
    let name = args.name.clone().unwrap_or_else(|| backup_name(schedule_name, jiff::Timestamp::now()));
    check_name("backup", &name)?;
    Ok(stamp_backup(&schedule, name, backup_labels))
}

async fn create(args: CreateArgs, server: &ServerApi) -> anyhow::Result<bool> {
    let timeout = wait_timeout(args.timeout.as_deref())?;
    let backup = backup_object(&args, server).await?;
    server.location_for_backup(&backup.spec.storage_location).await?;
    server.check_server_running().await?;
    let created = server.create(&backup).await?;
    let name = created.name_any();
    if !args.wait {
        args.output.print(&CreateReport { backup: printable(created) }, |_| {
            format!(
                "Backup request {name:?} submitted successfully.\nRun `cairn backup describe {name}` or `cairn backup logs {name}` for more details.\n"
            )
        })?;
        return Ok(true);
    }
    let finished =
        follow(server, &format!("backup {name}"), &created, timeout, progress, |b: &Backup| !b.phase().is_active())
            .await?;
    let completed = finished.phase() == BackupPhase::Completed;
    args.output.print(&CreateReport { backup: printable(finished) }, |r| outcome_text(&r.backup))?;
    Ok(completed)
}

fn backups_table(backups: &[Backup]) -> String {
    let mut rows = vec![
        ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE LOCATION", "SELECTOR"]
            .map(String::from)
            .to_vec(),
    ];
    for b in backups {
        let status = b.status.clone().unwrap_or_default();
        rows.push(vec![
            b.name_any(),
            b.phase().as_str().to_owned(),
            status.errors.to_string(),
            status.warnings.to_string(),
            time_text(b.metadata.creation_timestamp.as_ref()),
            time_text(status.expiration.as_ref()),
            location_text(b),
            selector_text(&b.spec.selection),
        ]);
    }
    table(&rows)
}

/// What `backup describe` prints with a server.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    backup: Backup,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<BackupResults>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_list: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deletion_attempts: Vec<DeleteBackupRequest>,
}

/// The backup's deletion attempts, Velero-style: each request's name, time and phase, and its errors.
fn deletion_attempts_text(attempts: &[DeleteBackupRequest]) -> String {
    if attempts.is_empty() {
        return String::new();
    }
    let failed = attempts.iter().filter(|a| a.status.as_ref().is_some_and(|s| !s.errors.is_empty())).count();
    let mut text = if failed > 0 {
        format!("\nDeletion attempts ({failed} failed):\n")
    } else {
        "\nDeletion attempts:\n".to_owned()
    };
    for attempt in attempts {
        let status = attempt.status.clone().unwrap_or_default();
        let phase = match status.phase.unwrap_or_default() {
            RequestPhase::New => "New",
            RequestPhase::InProgress => "InProgress",
            RequestPhase::Processed => "Processed",
        };
        text.push_str(&format!(
            "  {}  {}: {phase}\n",
            attempt.name_any(),
            time_text(attempt.metadata.creation_timestamp.as_ref())
        ));
        if !status.errors.is_empty() {
            text.push_str("    Errors:\n");
            for error in &status.errors {
                text.push_str(&format!("      {error}\n"));
            }
        }
    }
    text
}

fn describe_text(d: &Description) -> String {
    let b = &d.backup;
    let status = b.status.clone().unwrap_or_default();
    let counts = status.progress.clone().unwrap_or_default();
    let labels: Vec<String> = b.labels().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut text = format!(
        "Name:         {}\nNamespace:    {}\nLabels:       {}\nPhase:        {}\n",
        b.name_any(),
        b.namespace().unwrap_or_default(),
        list_text(&labels),
        b.phase().as_str()
    );
    text.push_str(&reasons_text(b));
    text.push('\n');
    text.push_str(&spec_text(&b.spec, &location_text(b)));
    text.push_str(&format!(
        "\nCreated:    {}\nStarted:    {}\nCompleted:  {}\nExpiration: {}\n\nTotal items to be backed up:  {}\nItems backed up:              {}\nWarnings: {}\nErrors:   {}\n",
        time_text(b.metadata.creation_timestamp.as_ref()),
        time_text(status.start_timestamp.as_ref()),
        time_text(status.completion_timestamp.as_ref()),
        time_text(status.expiration.as_ref()),
        counts.total_items,
        counts.items_backed_up,
        status.warnings,
        status.errors,
    ));
    if let Some(version) = &status.version {
        text.push_str(&format!("\nWritten by Cairn {version}\n"));
    }
    if let Some(results) = &d.results {
        text.push_str(&problems_text(&results.warnings, "\nWarnings"));
        text.push_str(&problems_text(&results.errors, "\nErrors"));
        text.push_str(&crate::backup::hooks_text(&results.hooks));
    }
    text.push_str(&deletion_attempts_text(&d.deletion_attempts));
    if let Some(resources) = &d.resource_list {
        text.push_str(&standalone::resource_list_text(resources));
    }
    text
}

async fn describe(name: &str, details: bool, server: &ServerApi) -> anyhow::Result<Description> {
    let backup = server.get::<Backup>(name).await?;
    let deletion_attempts = server.deletion_attempts(name).await?.into_iter().map(printable).collect();
    if !details || !backup.phase().is_restorable() {
        return Ok(Description { backup, results: None, resource_list: None, deletion_attempts });
    }
    let results = gunzip_json(&fetch::download(server, DownloadTargetKind::BackupResults, name).await?)?;
    let resource_list = gunzip_json(&fetch::download(server, DownloadTargetKind::BackupResourceList, name).await?)?;
    Ok(Description { backup, results: Some(results), resource_list: Some(resource_list), deletion_attempts })
}

/// The backup `name`, which must have finished; `what` names the file wanted, for the error.
async fn finished_backup(name: &str, what: &str, server: &ServerApi) -> anyhow::Result<Backup> {
    let backup = server.get::<Backup>(name).await?;
    if backup.phase().is_active() {
        bail!(
            "backup {name:?} is {}: its {what} is stored when it ends; try again then (`cairn backup get {name}` shows its phase)",
            backup.phase().as_str()
        );
    }
    Ok(backup)
}

async fn download(name: &str, file: Option<PathBuf>, force: bool, server: &ServerApi) -> anyhow::Result<()> {
    let backup = finished_backup(name, "archive", server).await?;
    if !backup.phase().is_restorable() {
        bail!("backup {name:?} is {}; it has no archive", backup.phase().as_str());
    }
    let extension = backup.spec.compression.unwrap_or(Compression::Zstd).extension();
    let Some(path) = super::download_path(name, file, extension, force)? else {
        crate::output::reserve_stdout();
        let mut out = tokio::io::stdout();
        fetch::download_to(server, DownloadTargetKind::BackupContents, name, &mut out, "standard output").await?;
        return Ok(());
    };
    let partial = path.with_extension(format!("{extension}.partial"));
    let bytes = match fetch::download_to_file(server, DownloadTargetKind::BackupContents, name, &partial).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error);
        }
    };
    tokio::fs::rename(&partial, &path).await?;
    write_out(&format!("Backup {name} downloaded to {} ({}).\n", path.display(), human_bytes(bytes)))?;
    Ok(())
}

/// Refuses to delete `backup` where the server would refuse, by the server's own rule
/// (`backup::deletion::check_deletable`): it still runs, or its location is missing or ReadOnly. The
/// refusal is seen now, not only in the request's status. (Restores reading the backup are left to the
/// server, which sees them when it processes the request.)
async fn check_deletable(backup: &Backup, server: &ServerApi) -> anyhow::Result<()> {
    let name = backup.name_any();
    deletion::check_deletable(backup, &[], None)?;
    let location = server.location_of(backup).await.with_context(|| format!("cannot delete backup {name:?}"))?;
    deletion::check_deletable(backup, &[], location.as_ref())?;
    Ok(())
}

async fn delete(names: &[String], confirmed: bool, output: OutputFormat, server: &ServerApi) -> anyhow::Result<()> {
    let mut backups = Vec::with_capacity(names.len());
    for name in names {
        let backup = server.get::<Backup>(name).await?;
        check_deletable(&backup, server).await?;
        backups.push(backup);
    }
    server.check_server_running().await?;
    let what = super::deletion_subject(names);
    confirm(
        confirmed,
        &what,
        &format!(
            "Delete {what}, all their stored data and the restores made from them (server in namespace {:?})?",
            server.namespace()
        ),
    )?;
    let mut requests = Vec::with_capacity(backups.len());
    for backup in &backups {
        requests.push(printable(server.request_backup_deletion(backup).await?));
    }
    let text = |requests: &[DeleteBackupRequest]| -> String {
        let mut text = String::new();
        for request in requests {
            let name = &request.spec.backup_name;
            text.push_str(&format!(
                "Request to delete backup {name:?} submitted successfully as DeleteBackupRequest {}.\n",
                request.name_any()
            ));
        }
        text.push_str(
            "The server deletes the stored data, the restores made from it, then the Backup object; `cairn backup describe NAME` shows the deletion attempt and any refusal.\n",
        );
        text
    };
    match requests.as_slice() {
        [one] => output.print(one, |r| text(std::slice::from_ref(r))),
        many => output.print(&many, |r| text(r)),
    }
}

/// Runs a `cairn backup` subcommand against the server.
pub(super) async fn run(command: BackupCommand, server: &ServerApi) -> anyhow::Result<bool> {
    match command {
        BackupCommand::Create(args) => create(*args, server).await,
        BackupCommand::Get { names, output } => {
            let backups = server.get_named_or_all::<Backup>(&names).await?;
            let backups: Vec<Backup> = backups.into_iter().map(printable).collect();
            output.print(&backups, |b| backups_table(b))?;
            Ok(true)
        }
        BackupCommand::Describe { name, details, output } => {
            let mut description = describe(&name, details, server).await?;
            description.backup = printable(description.backup);
            output.print(&description, describe_text)?;
            Ok(true)
        }
        BackupCommand::Download { name, file, force } => download(&name, file, force, server).await.map(|()| true),
        BackupCommand::Logs { name } => {
            finished_backup(&name, "log", server).await?;
            write_out(&gunzip_text(&fetch::download(server, DownloadTargetKind::BackupLog, &name).await?)?)?;
            Ok(true)
        }
        BackupCommand::Verify { .. } => bail!(
            "`cairn backup verify` reads the archive and its manifest straight from the storage location: pass --storage URL (the location's URL) to verify standalone"
        ),
        BackupCommand::Delete { names, confirm, output } => {
            delete(&super::distinct(names), confirm, output, server).await.map(|()| true)
        }
    }
}
