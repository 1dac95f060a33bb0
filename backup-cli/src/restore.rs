//! `cairn restore ...`: flags, validation into requests, and presentation of restores and previews.

use std::collections::BTreeMap;

use anyhow::Context;
use backup_core::restore::{
    self, ExistingResourcePolicy, ItemOutcome, RestoreOutcome, RestorePhase, RestoreProgress, RestoreRecord,
    RestoreRequest, RestoreSpec,
};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use tokio::sync::watch;

use crate::{
    connect::Connection,
    output::{OutputFormat, table},
    progress::ProgressView,
    selection::SelectionArgs,
};

/// `cairn restore` subcommands.
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restore a backup's objects into the cluster (never deletes anything); --dry-run previews.
    Create(Box<CreateArgs>),
    /// List restores.
    Get {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show one restore.
    Describe {
        /// The restore.
        name: String,
        /// Also list every object's result.
        #[arg(long)]
        details: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Print a restore's log.
    Logs {
        /// The restore.
        name: String,
    },
}

/// Existing-resource policies on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Leave existing objects alone; warn when they differ.
    None,
    /// Merge-patch the difference into existing objects.
    Update,
}

/// `cairn restore create` flags (Velero's names).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The restore's name; default `<backup>-<YYYYMMDDhhmmss>`.
    name: Option<String>,
    /// The backup to restore.
    #[arg(long)]
    from_backup: String,
    #[command(flatten)]
    selection: SelectionArgs,
    /// Restore namespace A into B: `a:b,c:d`.
    #[arg(long, value_delimiter = ',')]
    namespace_mappings: Vec<String>,
    /// What to do with objects that already exist.
    #[arg(long, value_enum, default_value_t = PolicyArg::None)]
    existing_resource_policy: PolicyArg,
    /// Keep Services' node ports.
    #[arg(long)]
    preserve_nodeports: bool,
    /// Print what would happen to every object, checked by the API server's dry run; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait for completion (the standalone CLI always does; kept for Velero parity).
    #[arg(long)]
    wait: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

impl CreateArgs {
    fn request(&self) -> anyhow::Result<RestoreRequest> {
        let mut mapping = BTreeMap::new();
        for pair in &self.namespace_mappings {
            let (from, to) = pair
                .split_once(':')
                .with_context(|| format!("--namespace-mappings {pair:?}: write old:new, e.g. shop:shop-copy"))?;
            mapping.insert(from.trim().to_owned(), to.trim().to_owned());
        }
        Ok(RestoreRequest {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| restore::default_restore_name(&self.from_backup, jiff::Timestamp::now())),
            spec: RestoreSpec {
                backup_name: self.from_backup.clone(),
                selection: self.selection.spec()?,
                namespace_mapping: mapping,
                existing_resource_policy: match self.existing_resource_policy {
                    PolicyArg::None => ExistingResourcePolicy::None,
                    PolicyArg::Update => ExistingResourcePolicy::Update,
                },
                preserve_node_ports: self.preserve_nodeports,
                schedule_name: None,
            },
            dry_run: self.dry_run,
        })
    }
}

fn action(outcome: ItemOutcome, dry_run: bool) -> &'static str {
    match (outcome, dry_run) {
        (ItemOutcome::Created, true) => "create",
        (ItemOutcome::Updated, true) => "update",
        (ItemOutcome::Failed, true) => "blocked",
        (ItemOutcome::Skipped, true) => "skip",
        (other, _) => other.as_str(),
    }
}

fn items_table(outcome: &RestoreOutcome) -> String {
    let dry_run = outcome.restore.status.phase == RestorePhase::DryRun;
    let mut rows = vec![["ACTION", "RESOURCE", "NAMESPACE", "NAME", "DETAIL"].map(String::from).to_vec()];
    for item in &outcome.items {
        let mut detail = item.reason.clone().unwrap_or_default();
        if !item.changes.is_empty() {
            let fields = format!("fields: {}", item.changes.join(", "));
            detail = if detail.is_empty() { fields } else { format!("{detail}; {fields}") };
        }
        rows.push(vec![
            action(item.outcome, dry_run).to_owned(),
            item.resource.clone(),
            item.namespace.clone().unwrap_or_else(|| "-".into()),
            item.name.clone(),
            detail,
        ]);
    }
    table(&rows)
}

/// Objects per kind and outcome: `{"ConfigMap": {"created": 3}}`.
fn per_kind(outcome: &RestoreOutcome) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let mut counts: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for item in &outcome.items {
        *counts.entry(item.kind.clone()).or_default().entry(item.outcome.as_str()).or_default() += 1;
    }
    counts
}

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
    let mut rows = vec![vec![
        "KIND".to_owned(),
        "CREATED".into(),
        "UPDATED".into(),
        "UNCHANGED".into(),
        "SKIPPED".into(),
        "FAILED".into(),
    ]];
    for (kind, counts) in per_kind(outcome) {
        let n = |k: &str| counts.get(k).copied().unwrap_or(0).to_string();
        rows.push(vec![kind, n("created"), n("updated"), n("unchanged"), n("skipped"), n("failed")]);
    }
    text.push_str(&table(&rows));
    for (title, problems) in [("Warnings", &outcome.warnings), ("Errors", &outcome.errors)] {
        if !problems.is_empty() {
            text.push_str(&format!("{title}:\n"));
            for p in problems {
                text.push_str(&format!("  {p}\n"));
            }
        }
    }
    text
}

async fn create(args: CreateArgs, connection: &Connection) -> anyhow::Result<bool> {
    let request = args.request()?;
    let store = connection.store()?;
    let client = connection.client().await?;
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
    args.output.print(&outcome, |o| if dry_run { format!("{}{}", items_table(o), summary(o)) } else { summary(o) })?;
    Ok(outcome.errors.is_empty())
}

/// What `restore describe` prints.
#[derive(Debug, Serialize)]
struct Description {
    restore: RestoreRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<restore::StoredResults>,
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

/// Runs a `cairn restore` subcommand. Ok(false): the restore ran with errors (exit 1).
pub async fn run(command: RestoreCommand, connection: &Connection) -> anyhow::Result<bool> {
    match command {
        RestoreCommand::Create(args) => create(*args, connection).await,
        RestoreCommand::Get { output } => {
            let store = connection.store()?;
            output.print(&restore::list_restores(&store).await?, |r| restores_table(r))?;
            Ok(true)
        }
        RestoreCommand::Describe { name, details, output } => {
            let store = connection.store()?;
            let record = restore::find_restore(&store, &name).await?;
            let results = if details { Some(restore::read_restore_results(&store, &name).await?) } else { None };
            output.print(&Description { restore: record, results }, |d| {
                let outcome = RestoreOutcome {
                    restore: d.restore.clone(),
                    items: d.results.as_ref().map(|r| r.items.clone()).unwrap_or_default(),
                    warnings: d.results.as_ref().map(|r| r.warnings.clone()).unwrap_or_default(),
                    errors: d.results.as_ref().map(|r| r.errors.clone()).unwrap_or_default(),
                };
                let mut text = summary(&outcome);
                if details {
                    text.push_str(&items_table(&outcome));
                }
                text
            })?;
            Ok(true)
        }
        RestoreCommand::Logs { name } => {
            let store = connection.store()?;
            print!("{}", restore::read_restore_log(&store, &name).await?);
            Ok(true)
        }
    }
}
