//! `cairn restore ...` with a server: Restore objects in its namespace and their files through
//! DownloadRequests.

use crate::output::write_out;
use anyhow::bail;
use backup_core::restore::StoredResults;

use crate::client::ServerApi;
use cairn_api::{Backup, DownloadTargetKind, Restore, RestoreObjectPhase, Schedule};
use kube::{ResourceExt, api::ObjectMeta};
use serde::Serialize;

use super::{CreateArgs, RestoreCommand, items_table, per_kind_table, problems_text};
use crate::{
    backup::{selector_text, wait_timeout},
    fetch::{self, gunzip_json, gunzip_text},
    follow::{ServerProgress, follow},
    output::{printable, table, time_text},
};

/// What `restore create` prints with a server.
#[derive(Debug, Serialize)]
struct CreateReport {
    restore: Restore,
}

fn is_active(restore: &Restore) -> bool {
    matches!(restore.phase(), RestoreObjectPhase::New | RestoreObjectPhase::InProgress)
}

fn progress(restore: &Restore) -> ServerProgress {
    let counts = restore.status.as_ref().and_then(|s| s.progress.clone()).unwrap_or_default();
    ServerProgress { phase: restore.phase().as_str(), done: counts.items_restored, total: counts.total_items }
}

/// What the restore reads: the backup, or the schedule whose latest backup the server picks.
fn source_text(restore: &Restore) -> String {
    match (&restore.spec.schedule_name, restore.spec.backup_name.as_str()) {
        (Some(schedule), "") => format!("<latest of schedule {schedule}>"),
        (_, backup) => backup.to_owned(),
    }
}

/// Validation errors and the failure reason, if any.
fn reasons_text(restore: &Restore) -> String {
    let Some(status) = &restore.status else { return String::new() };
    crate::output::reasons_text(&status.validation_errors, status.failure_reason.as_deref())
}

/// The restore's state in one line, then its reasons.
fn summary(restore: &Restore) -> String {
    let status = restore.status.clone().unwrap_or_default();
    let counts = status.progress.unwrap_or_default();
    let mut text = format!(
        "Restore {} from backup {} {}: {} of {} objects restored, {} warnings, {} errors\n",
        restore.name_any(),
        source_text(restore),
        restore.phase().as_str(),
        counts.items_restored,
        counts.total_items,
        status.warnings,
        status.errors,
    );
    text.push_str(&reasons_text(restore));
    text
}

async fn create(args: CreateArgs, server: &ServerApi) -> anyhow::Result<bool> {
    if args.dry_run {
        bail!(
            "the server does not preview restores: preview standalone with `cairn restore create --from-backup NAME --dry-run --storage URL`"
        );
    }
    if args.max_object_size.is_some() {
        bail!(
            "--max-object-size applies to standalone restores; the server's limit is its --restore-max-object-size flag"
        );
    }
    let name = args.name()?;
    let spec = args.spec()?;
    if let Some(backup_name) = &args.from_backup {
        let backup = server.get::<Backup>(backup_name).await?;
        if !backup.phase().is_restorable() {
            bail!(
                "backup {backup_name:?} is {}: only Completed or PartiallyFailed backups can be restored",
                backup.phase().as_str()
            );
        }
    }
    if let Some(schedule) = &args.from_schedule {
        server.get::<Schedule>(schedule).await?;
    }
    let timeout = wait_timeout(args.timeout.as_deref())?;
    server.check_server_running().await?;
    let restore =
        Restore { metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() }, spec, status: None };
    let created = server.create(&restore).await?;
    if !args.wait {
        args.output.print(&CreateReport { restore: printable(created) }, |_| {
            format!(
                "Restore request {name:?} submitted successfully.\nRun `cairn restore describe {name}` or `cairn restore logs {name}` for more details.\n"
            )
        })?;
        return Ok(true);
    }
    let finished =
        follow(server, &format!("restore {name}"), &created, timeout, progress, |r: &Restore| !is_active(r)).await?;
    let completed = finished.phase() == RestoreObjectPhase::Completed;
    args.output.print(&CreateReport { restore: printable(finished) }, |r| {
        format!(
            "{}Run `cairn restore describe {name} --details` or `cairn restore logs {name}` for more.\n",
            summary(&r.restore)
        )
    })?;
    Ok(completed)
}

fn restores_table(restores: &[Restore]) -> String {
    let mut rows = vec![
        ["NAME", "BACKUP", "STATUS", "STARTED", "COMPLETED", "ERRORS", "WARNINGS", "CREATED", "SELECTOR"]
            .map(String::from)
            .to_vec(),
    ];
    for r in restores {
        let status = r.status.clone().unwrap_or_default();
        rows.push(vec![
            r.name_any(),
            source_text(r),
            r.phase().as_str().to_owned(),
            time_text(status.start_timestamp.as_ref()),
            time_text(status.completion_timestamp.as_ref()),
            status.errors.to_string(),
            status.warnings.to_string(),
            time_text(r.metadata.creation_timestamp.as_ref()),
            selector_text(&r.spec.selection),
        ]);
    }
    table(&rows)
}

/// What `restore describe` prints with a server.
#[derive(Debug, Serialize)]
struct Description {
    restore: Restore,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<StoredResults>,
}

fn describe_text(d: &Description) -> String {
    let r = &d.restore;
    let status = r.status.clone().unwrap_or_default();
    let mut text = summary(r);
    let mapping: Vec<String> = r.spec.namespace_mapping.iter().map(|(from, to)| format!("{from}:{to}")).collect();
    text.push_str(&format!(
        "\nNamespace:          {}\nCreated:            {}\nStarted:            {}\nCompleted:          {}\nNamespace mappings: {}\nExisting objects:   {}\nLabel selector:     {}\n",
        r.namespace().unwrap_or_default(),
        time_text(r.metadata.creation_timestamp.as_ref()),
        time_text(status.start_timestamp.as_ref()),
        time_text(status.completion_timestamp.as_ref()),
        crate::output::list_text(&mapping),
        serde_json::to_value(r.spec.existing_resource_policy).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        selector_text(&r.spec.selection),
    ));
    if let Some(results) = &d.results {
        text.push('\n');
        text.push_str(&per_kind_table(&results.items));
        text.push_str(&problems_text(&results.warnings, &results.errors));
        text.push_str(&crate::backup::hooks_text(&results.hooks));
        text.push_str(&items_table(&results.items, false));
    }
    text
}

async fn describe(name: &str, details: bool, server: &ServerApi) -> anyhow::Result<Description> {
    let restore = printable(server.get::<Restore>(name).await?);
    let has_results = matches!(restore.phase(), RestoreObjectPhase::Completed | RestoreObjectPhase::PartiallyFailed);
    if !details || !has_results {
        return Ok(Description { restore, results: None });
    }
    let results = gunzip_json(&fetch::download(server, DownloadTargetKind::RestoreResults, name).await?)?;
    Ok(Description { restore, results: Some(results) })
}

/// Runs a `cairn restore` subcommand against the server. Ok(false): a followed restore did not complete.
pub(super) async fn run(command: RestoreCommand, server: &ServerApi) -> anyhow::Result<bool> {
    match command {
        RestoreCommand::Create(args) => create(*args, server).await,
        RestoreCommand::Get { names, output } => {
            let restores = server.get_named_or_all::<Restore>(&names).await?;
            let restores: Vec<Restore> = restores.into_iter().map(printable).collect();
            output.print(&restores, |r| restores_table(r))?;
            Ok(true)
        }
        RestoreCommand::Describe { name, details, output } => {
            output.print(&describe(&name, details, server).await?, describe_text)?;
            Ok(true)
        }
        RestoreCommand::Logs { name } => {
            let restore = server.get::<Restore>(&name).await?;
            if is_active(&restore) {
                bail!(
                    "restore {name:?} is {}: its log is stored when it ends; try again then (`cairn restore get` shows its phase)",
                    restore.phase().as_str()
                );
            }
            write_out(&gunzip_text(&fetch::download(server, DownloadTargetKind::RestoreLog, &name).await?)?)?;
            Ok(true)
        }
    }
}
