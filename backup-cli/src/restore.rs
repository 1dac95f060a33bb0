//! `cairn restore ...`: flags, their validation into a restore spec, and what standalone and server mode
//! share in presenting restores. The work of each mode is in `restore/standalone.rs` and
//! `restore/server.rs`.

mod server;
mod standalone;

use std::collections::BTreeMap;

use backup_core::restore::{ExistingResourcePolicy, ItemOutcome, ItemResults, RestoreSpec};
use cairn_kube::report::Problem;
use clap::{Args, Subcommand, ValueEnum};

use crate::{
    backup::check_name,
    connect::{Connection, Mode},
    output::{OutputFormat, table},
    selection::SelectionArgs,
};

/// `cairn restore` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RestoreCommand {
    /// Restore a backup's objects into the cluster (never deletes anything); --dry-run previews.
    ///
    /// With a server, the Restore is created only when its backup can be restored (or its schedule exists)
    /// and a server runs: the Lease cairn-server in the namespace is held and was renewed recently, or, for a
    /// server run with --leader-elect=false (which keeps no Lease), the server answers a status request
    /// within 5 s.
    Create(Box<CreateArgs>),
    /// List restores.
    Get {
        /// Only these restores.
        names: Vec<String>,
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
pub(crate) enum PolicyArg {
    /// Leave existing objects alone; warn when they differ.
    None,
    /// Merge-patch the difference into existing objects.
    Update,
}

/// `cairn restore create` flags (Velero's names).
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The restore's name; default `<backup or schedule>-<YYYYMMDDhhmmss>`.
    name: Option<String>,
    /// The backup to restore.
    #[arg(long, required_unless_present = "from_schedule", conflicts_with = "from_schedule")]
    from_backup: Option<String>,
    /// With a server: restore the latest Completed backup of this schedule.
    #[arg(long)]
    from_schedule: Option<String>,
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
    /// Rewrite objects on their way in with the resource modifier rules (Velero's `version: v1` format) held
    /// by this ConfigMap in the Cairn namespace (-n); checked before anything is restored.
    #[arg(long, value_name = "NAME")]
    resource_modifier_configmap: Option<String>,
    /// Standalone: the largest object read from the archive (bytes, or with Ki, Mi, Gi). The default,
    /// 4Mi, is above what the API server takes (3 MiB); a larger entry means a crafted archive, and is refused.
    #[arg(long, value_parser = cairn_kube::size::parse_size)]
    max_object_size: Option<u64>,
    /// Standalone: print what would happen to every object, checked by the API server's dry run; change
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// With a server: follow the restore until it ends, and exit 0 only if it Completed. (Standalone runs
    /// always wait.) Waiting stops with an error when the server stops running.
    #[arg(long)]
    wait: bool,
    /// With --wait: stop waiting after this long (Go duration: 30m, 2h) and exit 1; the server carries on
    /// with the restore. Default: wait until it ends.
    #[arg(long, requires = "wait")]
    timeout: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

impl CreateArgs {
    /// The restore's name: the one given, or `<source>-<YYYYMMDDhhmmss>`; checked.
    fn name(&self) -> anyhow::Result<String> {
        let source = self.from_backup.as_deref().or(self.from_schedule.as_deref()).unwrap_or_default();
        let name = match &self.name {
            Some(name) => name.clone(),
            None => backup_core::restore::default_restore_name(source, jiff::Timestamp::now()),
        };
        check_name("restore", &name)?;
        Ok(name)
    }

    /// Validates the flags into a spec (what to restore from is left to the caller).
    fn spec(&self) -> anyhow::Result<RestoreSpec> {
        let mapping = backup_core::restore::parse_mappings(&self.namespace_mappings)?;
        Ok(RestoreSpec {
            backup_name: self.from_backup.clone().unwrap_or_default(),
            selection: self.selection.spec()?,
            namespace_mapping: mapping,
            existing_resource_policy: match self.existing_resource_policy {
                PolicyArg::None => ExistingResourcePolicy::None,
                PolicyArg::Update => ExistingResourcePolicy::Update,
            },
            preserve_node_ports: self.preserve_nodeports,
            schedule_name: self.from_schedule.clone(),
            // Restore hooks are stated in the archived pods' annotations, or in a Restore object's spec.
            hooks: Default::default(),
            resource_modifier: self.resource_modifier_configmap.as_ref().map(|name| cairn_api::ResourceModifierRef {
                api_group: None,
                kind: "ConfigMap".to_owned(),
                name: name.clone(),
            }),
        })
    }
}

/// What happened (dry run: would happen) to an object, as the item table says it.
fn action(outcome: ItemOutcome, dry_run: bool) -> &'static str {
    match (outcome, dry_run) {
        (ItemOutcome::Created, true) => "create",
        (ItemOutcome::Updated, true) => "update",
        (ItemOutcome::Failed, true) => "blocked",
        (ItemOutcome::Skipped, true) => "skip",
        (other, _) => other.as_str(),
    }
}

/// One row per object: ACTION RESOURCE NAMESPACE NAME DETAIL.
fn items_table(items: &ItemResults, dry_run: bool) -> String {
    let mut rows = vec![["ACTION", "RESOURCE", "NAMESPACE", "NAME", "DETAIL"].map(String::from).to_vec()];
    for item in items.iter() {
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

/// Objects per kind and outcome, as a table: KIND CREATED UPDATED UNCHANGED SKIPPED FAILED.
fn per_kind_table(items: &ItemResults) -> String {
    let mut counts: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for item in items.iter() {
        *counts.entry(item.kind).or_default().entry(item.outcome.as_str()).or_default() += 1;
    }
    let mut rows = vec![["KIND", "CREATED", "UPDATED", "UNCHANGED", "SKIPPED", "FAILED"].map(String::from).to_vec()];
    for (kind, counts) in counts {
        let n = |k: &str| counts.get(k).copied().unwrap_or(0).to_string();
        rows.push(vec![kind, n("created"), n("updated"), n("unchanged"), n("skipped"), n("failed")]);
    }
    table(&rows)
}

/// `Warnings:` and `Errors:` paragraphs, for those that are not empty.
fn problems_text(warnings: &[Problem], errors: &[Problem]) -> String {
    let mut text = String::new();
    for (title, problems) in [("Warnings", warnings), ("Errors", errors)] {
        if !problems.is_empty() {
            text.push_str(&format!("{title}:\n"));
            for p in problems {
                text.push_str(&format!("  {p}\n"));
            }
        }
    }
    text
}

/// Runs a `cairn restore` subcommand in `mode`. Ok(false): the restore did not complete (exit 1).
pub(crate) async fn run(command: RestoreCommand, connection: &Connection, mode: &Mode) -> anyhow::Result<bool> {
    match mode {
        Mode::Standalone(_) => standalone::run(command, connection).await,
        Mode::Server(server) => server::run(command, server).await,
    }
}
