//! `cairn restore ...` standalone: the CLI runs the restore engine itself and reads the storage location.

use crate::output::write_out;
use anyhow::bail;
use backup_core::restore::{
    self, RestoreOutcome, RestorePhase, RestoreProgress, RestoreRecord, RestoreRequest, StoredResults,
};
use serde::Serialize;
use tokio::sync::watch;

use super::{CreateArgs, RestoreCommand, items_table, per_kind_table, problems_text};
use crate::{connect::Connection, output::table, progress::ProgressView};

fn summary(outcome: &RestoreOutcome) -> String {
    let status = &outcome.restore.status;
    let verb = if status.phase == RestorePhase::DryRun { "would be created or updated" } else { "restored" };
    let mut text = format!(
        "Restore {} from backup {} {}: {} objects {verb} of {}, {} warnings, {} errors\n",
        outcome.restore.metadata.name,
        outcome.restore.spec.backup_name,
        status.phase.as_str(),
        status.items_restored,
        status.total_items,
        status.warnings,
        status.errors
    );
    text.push_str(&per_kind_table(&outcome.items));
    text.push_str(&problems_text(&outcome.warnings, &outcome.errors));
    text.push_str(&crate::backup::hooks_text(&outcome.hooks));
    text
}

async fn create(args: CreateArgs, connection: &Connection) -> anyhow::Result<bool> {
    let Some(backup_name) = args.from_backup.clone() else {
        bail!(
            "--from-schedule needs a Cairn server (schedules are server objects), but cairn is standalone here; pass --from-backup NAME"
        );
    };
    let mut request =
        RestoreRequest::new(args.name()?, restore::RestoreSpec { backup_name, ..args.spec()? }, args.dry_run);
    if let Some(limit) = args.max_object_size {
        request.max_entry_bytes = limit;
    }
    let store = connection.existing_store()?;
    let client = connection.client().await?;
    request.modifiers =
        restore::load_modifiers(&client, &connection.namespace, request.spec.resource_modifier.as_ref()).await?;
    let (sender, receiver) = watch::channel(RestoreProgress::default());
    let label = if request.dry_run {
        format!("restore {} (dry run)", request.name)
    } else {
        format!("restore {}", request.name)
    };
    let view = ProgressView::start(&label, receiver);
    let result = restore::run_restore(&client, &store, request, &sender).await;
    view.finish().await;
    let outcome = result?;
    let dry_run = outcome.restore.status.phase == RestorePhase::DryRun;
    args.output.print(&outcome, |o| {
        if dry_run { format!("{}{}", items_table(&o.items, true), summary(o)) } else { summary(o) }
    })?;
    Ok(outcome.errors.is_empty() && outcome.restore.status.phase != RestorePhase::Failed)
}

/// What `restore describe` prints.
#[derive(Debug, Serialize)]
struct Description {
    restore: RestoreRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<StoredResults>,
}

fn restores_table(records: &[RestoreRecord]) -> String {
    let mut rows =
        vec![["NAME", "BACKUP", "STATUS", "STARTED", "COMPLETED", "ERRORS", "WARNINGS"].map(String::from).to_vec()];
    for r in records {
        rows.push(vec![
            r.metadata.name.clone(),
            r.spec.backup_name.clone(),
            r.status.phase.as_str().to_owned(),
            r.status.start_timestamp.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            r.status.completion_timestamp.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            r.status.errors.to_string(),
            r.status.warnings.to_string(),
        ]);
    }
    table(&rows)
}

/// Runs a `cairn restore` subcommand standalone. Ok(false): the restore ran with errors (exit 1).
pub(super) async fn run(command: RestoreCommand, connection: &Connection) -> anyhow::Result<bool> {
    match command {
        RestoreCommand::Create(args) => create(*args, connection).await,
        RestoreCommand::Get { names, output } => {
            let store = connection.existing_store()?;
            let mut records = restore::list_restores(&store).await?;
            if !names.is_empty() {
                records.retain(|r| names.contains(&r.metadata.name));
                if let Some(missing) = names.iter().find(|n| !records.iter().any(|r| &r.metadata.name == *n)) {
                    bail!("no restore named {missing:?} in {}", store.location());
                }
            }
            output.print(&records, |r| restores_table(r))?;
            Ok(true)
        }
        RestoreCommand::Describe { name, details, output } => {
            let store = connection.existing_store()?;
            let record = restore::find_restore(&store, &name).await?;
            let results = if details { Some(restore::read_restore_results(&store, &name).await?) } else { None };
            output.print(&Description { restore: record, results }, |d| {
                let outcome = RestoreOutcome {
                    restore: d.restore.clone(),
                    items: d.results.as_ref().map(|r| r.items.clone()).unwrap_or_default(),
                    warnings: d.results.as_ref().map(|r| r.warnings.clone()).unwrap_or_default(),
                    errors: d.results.as_ref().map(|r| r.errors.clone()).unwrap_or_default(),
                    hooks: d.results.as_ref().map(|r| r.hooks.clone()).unwrap_or_default(),
                };
                let mut text = summary(&outcome);
                if details {
                    text.push_str(&items_table(&outcome.items, false));
                }
                text
            })?;
            Ok(true)
        }
        RestoreCommand::Logs { name } => {
            let store = connection.existing_store()?;
            write_out(&restore::read_restore_log(&store, &name).await?)?;
            Ok(true)
        }
    }
}
