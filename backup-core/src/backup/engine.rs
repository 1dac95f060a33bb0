//! Running one backup in three steps: plan (`plan.rs`: checks, discovery, selection, the lists to run; nothing
//! written), collect (`lists.rs`: every list page by page into the archive sink, then related objects), and
//! commit (here: the side files and, last and create-only, the record). Any failure after the first byte
//! leaves a Failed record (when the store still answers) and never a Completed one.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, atomic::AtomicU64},
};

use cairn_api::{API_VERSION, BackupFormat, RecordMeta};
use cairn_kube::{
    discovery::DiscoveryError,
    duration::{DurationError, expires_at, format_duration},
    report::RunLog,
};
use jiff::Timestamp;
use kube::Client;
use tokio::sync::{mpsc, watch};

use super::{
    BackupRecord, BackupResults, BackupSpec, BackupStatus, HookPhase, Phase, Progress, hooks,
    lists::{Collected, collect},
    plan::{BackupPlan, plan},
    sink::{SinkOutput, spawn_sink},
};
use crate::{
    archive::FORMAT_VERSION,
    selection::SelectionError,
    store::{BackupKeys, Layout, Store, StoreError},
};

/// Pages waiting for the archive sink. One: the sink compresses a page in a few milliseconds where the API
/// server takes tens to list one, so a longer queue only held more pages (1.5 MiB each) in memory.
const SINK_QUEUE: usize = 1;

/// Why a backup did not run or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The name is not a valid object name.
    #[error("invalid backup name {0:?}: {rule} (e.g. nightly-2026-11-28)", rule = cairn_kube::names::NAME_RULE)]
    InvalidName(String),
    /// The TTL could not be read.
    #[error("invalid --ttl: {0}")]
    Ttl(#[from] DurationError),
    /// The selection could not be used.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// The spec's hooks cannot be used.
    #[error("invalid hooks: {0}")]
    Hooks(String),
    /// The format and compression asked for do not go together.
    #[error("{0}")]
    Format(String),
    /// A backup of that name exists already.
    #[error("backup {name:?} already exists in {location}; choose another name (nothing was written)")]
    Exists {
        /// The name.
        name: String,
        /// The location.
        location: String,
    },
    /// The storage location failed before anything was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The backup started but failed; `recorded` says whether a Failed record could be written.
    #[error("backup {name:?} failed: {reason}{}", if *recorded { " (recorded as Failed)" } else { " (no record could be written; the backup does not exist)" })]
    Failed {
        /// The name.
        name: String,
        /// Why.
        reason: String,
        /// Whether the Failed record was written.
        recorded: bool,
    },
}

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The backup's name.
    pub name: String,
    /// What and how.
    pub spec: BackupSpec,
    /// Labels for the record.
    pub labels: BTreeMap<String, String>,
}

/// Live counters, for progress displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupProgress {
    /// List tasks planned (a type, or a type in one namespace).
    pub lists_total: usize,
    /// List tasks finished.
    pub lists_done: usize,
    /// Objects sent to the archive.
    pub items: u64,
    /// Compressed bytes written.
    pub bytes: u64,
}

/// A finished backup (Completed or PartiallyFailed).
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The record as stored.
    pub record: BackupRecord,
    /// Counts, warnings and errors.
    pub results: BackupResults,
}

/// Checks a backup name: a DNS-1123 subdomain, as Kubernetes object names are.
pub fn validate_name(name: &str) -> Result<(), BackupError> {
    if cairn_kube::names::is_valid_name(name) { Ok(()) } else { Err(BackupError::InvalidName(name.to_owned())) }
}

/// A run id unique to this attempt: start time and randomness.
fn run_id(started: Timestamp) -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{}-{:04x}", started.strftime("%Y%m%d%H%M%S"), random & 0xffff)
}

/// Runs a backup into `store`. Returns the outcome of a Completed or PartiallyFailed backup; every other
/// end is an error, and none of them leaves a Completed record.
pub async fn run_backup(
    client: &Client,
    store: &Store,
    request: BackupRequest,
    progress: &watch::Sender<BackupProgress>,
) -> Result<BackupOutcome, BackupError> {
    let mut plan = plan(client, store, &request).await?;
    let lists_total = plan.tasks.len();
    progress.send_modify(|p| p.lists_total = lists_total);
    let keys = Layout.backup_keys(&plan.name, &run_id(plan.started), plan.compression);
    let (sender, receiver) = mpsc::channel(SINK_QUEUE);
    let bytes = Arc::new(AtomicU64::new(0));
    let mtime = plan.started.as_second().max(0) as u64;
    let sink = spawn_sink(store, &keys, plan.compression, mtime, receiver, bytes.clone());
    let hook_pods = pre_hooks(client, &mut plan).await;
    let (results, log) = (std::mem::take(&mut plan.results), std::mem::take(&mut plan.log));
    let mut collected = collect(client, &plan, sender, progress, &bytes, results, log).await;
    let Collected { results, log, .. } = &mut collected;
    hooks::run_phase(client, &hook_pods, HookPhase::Post, &plan.hook_entries, &plan.left_out_pods, results, log).await;
    let sink_result = sink.await.map_err(std::io::Error::other).and_then(|r| r);
    report_final(progress, collected.items, bytes.load(std::sync::atomic::Ordering::Relaxed));
    let record = started_record(store, &request, &plan, &keys);
    let mut log = collected.log.clone();
    match (collected.complete, sink_result) {
        (true, Ok(output)) => commit(store, &keys, record, collected, output).await,
        (_, Err(error)) => {
            Err(fail(store, &keys, record, &mut log, format!("writing the archive failed: {error}")).await)
        }
        (false, Ok(_)) => Err(fail(store, &keys, record, &mut log, "the archive writer stopped early".into()).await),
    }
}

/// The record of the backup as it started: its spec as it will be stored (TTL and compression settled,
/// the location named), InProgress.
/// Finds the selected pods with hooks and runs their pre hooks; the pods whose pre hooks failed are left
/// out of the backup. The pods found, for the post hooks.
async fn pre_hooks(client: &Client, plan: &mut BackupPlan) -> Vec<k8s_openapi::api::core::v1::Pod> {
    let pods = match hooks::hook_pods(
        client,
        &plan.selection,
        plan.namespaces.as_deref(),
        &plan.excluded_namespaces,
        &plan.hook_entries,
    )
    .await
    {
        Ok(pods) => pods,
        Err(error) => {
            let reason = format!(
                "listing pods to find their hooks failed, no hook ran: {}",
                cairn_kube::errors::describe(&error)
            );
            plan.log
                .problem(cairn_kube::report::Severity::Error, &cairn_kube::report::Problem::general(reason.clone()));
            plan.results.errors.push(cairn_kube::report::Problem::general(reason));
            return Vec::new();
        }
    };
    if !pods.is_empty() {
        plan.log.info(format!("{} pod(s) have backup hooks", pods.len()));
    }
    let (results, log) = (&mut plan.results, &mut plan.log);
    plan.left_out_pods =
        hooks::run_phase(client, &pods, HookPhase::Pre, &plan.hook_entries, &BTreeSet::new(), results, log).await;
    pods
}

fn started_record(store: &Store, request: &BackupRequest, plan: &BackupPlan, keys: &BackupKeys) -> BackupRecord {
    let mut spec = request.spec.clone();
    spec.ttl = format_duration(plan.ttl);
    spec.compression = Some(plan.compression);
    if spec.storage_location.is_empty() {
        spec.storage_location = store.location().to_string();
    }
    BackupRecord {
        api_version: API_VERSION.to_owned(),
        kind: "Backup".to_owned(),
        metadata: RecordMeta { name: plan.name.clone(), labels: request.labels.clone() },
        spec,
        status: BackupStatus {
            phase: Phase::InProgress,
            format_version: FORMAT_VERSION.to_owned(),
            cairn_version: crate::VERSION.to_owned(),
            run: keys.run().to_owned(),
            start_timestamp: plan.started,
            completion_timestamp: None,
            expiration: expires_at(plan.started, plan.ttl),
            progress: Progress::default(),
            warnings: 0,
            errors: 0,
            failure_reason: None,
            archive: None,
        },
    }
}

/// The commit step: the outcome settled, the side files written, then the record, create-only.
async fn commit(
    store: &Store,
    keys: &BackupKeys,
    mut record: BackupRecord,
    collected: Collected,
    output: SinkOutput,
) -> Result<BackupOutcome, BackupError> {
    let Collected { mut results, mut log, .. } = collected;
    let total: u64 = output.counts.values().sum();
    results.counts = output.counts;
    results.images = output.images;
    let status = &mut record.status;
    status.progress = Progress { total_items: total, items_backed_up: total };
    status.warnings = results.warnings.len() as u64;
    status.errors = results.errors.len() as u64;
    status.archive = Some(output.summary);
    status.completion_timestamp = Some(Timestamp::now());
    status.phase = if results.errors.is_empty() { Phase::Completed } else { Phase::PartiallyFailed };
    log.info(format!(
        "backup {} {}: {total} objects, {} warnings, {} errors",
        record.metadata.name,
        status.phase.as_str(),
        status.warnings,
        status.errors
    ));
    let side_files = async {
        store.put_gzip_json(&keys.results, &results).await?;
        store.put_gzip_text(&keys.log, &log.text()).await
    };
    if let Err(error) = side_files.await {
        let reason = format!("writing the backup's side files failed: {error}");
        return Err(fail(store, keys, record, &mut log, reason).await);
    }
    if record.spec.format == Some(BackupFormat::Velero)
        && let Err(error) = super::velero_write::write(store, &record, keys, &results).await
    {
        let reason = format!("writing the backup in Velero's layout failed: {error}");
        return Err(fail(store, keys, record, &mut log, reason).await);
    }
    match super::create_record(store, &record).await {
        Ok(()) => Ok(BackupOutcome { record, results }),
        Err(StoreError::AlreadyExists { location, .. }) => {
            // A retried create whose first attempt went through finds its own record: the backup is done.
            if let Ok(Some(stored)) = super::read_backup(store, record.name()).await
                && stored.status.run == record.status.run
            {
                return Ok(BackupOutcome { record, results });
            }
            // Another writer took the name meanwhile: remove only this attempt's files.
            let _ = store.delete_keys(&keys.attempt_files()).await;
            Err(BackupError::Exists { name: record.metadata.name, location })
        }
        Err(error) => {
            let reason = format!("writing the backup record failed: {error}");
            Err(fail(store, keys, record, &mut log, reason).await)
        }
    }
}

fn report_final(progress: &watch::Sender<BackupProgress>, items: u64, bytes: u64) {
    progress.send_modify(|p| {
        p.items = items;
        p.bytes = bytes;
        p.lists_done = p.lists_total;
    });
}

/// Ends a started backup as Failed: removes this attempt's data, keeps its log, and writes a Failed
/// record (create-only) if the store still answers.
async fn fail(
    store: &Store,
    keys: &BackupKeys,
    mut record: BackupRecord,
    log: &mut RunLog,
    reason: String,
) -> BackupError {
    log.error(format!("backup failed: {reason}"));
    let data: Vec<_> = keys.attempt_files().into_iter().filter(|k| *k != keys.log).collect();
    let _ = store.delete_keys(&data).await;
    let _ = store.put_gzip_text(&keys.log, &log.text()).await;
    record.status.phase = Phase::Failed;
    record.status.failure_reason = Some(reason.clone());
    record.status.completion_timestamp = Some(Timestamp::now());
    record.status.archive = None;
    let recorded = super::create_record(store, &record).await.is_ok();
    if !recorded {
        // Without its record the backup does not exist: leave no log behind in a folder nothing lists.
        let _ = store.delete_keys(std::slice::from_ref(&keys.log)).await;
    }
    BackupError::Failed { name: record.metadata.name, reason, recorded }
}
