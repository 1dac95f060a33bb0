//! Running one restore: check and index the backup, choose what to restore, then apply it wave by wave (one
//! streaming pass over the archive per wave, objects of a wave in parallel), retry objects whose
//! prerequisites were not there yet, and store the results beside the backup. Once anything may have been
//! applied there is one way out, through [`finish`]: whatever happens, the restore is recorded with what
//! was applied, as Failed with the reason when it could not go on.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{Stream, StreamExt, stream};
use jiff::Timestamp;
use kube::Client;
use tokio::sync::{mpsc, watch};

use super::{
    ItemOutcome, ItemResult, RestoreError, RestoreOutcome, RestorePhase, RestoreRecord, RestoreSpec, RestoreStatus,
    apply::{Applied, Applier, Pending},
    choice::{Choice, Chosen},
    decide::{self, Rules},
    results::{ItemResults, ItemResultsWriter},
    source::{BackupSource, ReadItem, budget},
    transform::Transform,
};
use cairn_api::{API_VERSION, RecordMeta};
use cairn_kube::{
    discovery::Discovery,
    report::{Problem, RunLog},
    resources::CRDS,
};

use crate::{
    archive::{DEFAULT_MAX_ENTRY_BYTES, ResourceList},
    backup::{HookOutcome, HookRun},
    selection::Selection,
    store::{Layout, Store, StoreError},
};

/// Objects of one wave applied at once.
const PARALLEL_ITEMS: usize = 32;
/// Rounds of retries for objects whose prerequisites were missing.
const RETRY_ROUNDS: u32 = 3;

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The restore's name.
    pub name: String,
    /// What and how.
    pub spec: RestoreSpec,
    /// Preview only: decide and check every object with the server's dry run, change nothing.
    pub dry_run: bool,
    /// The largest archive entry read ([`DEFAULT_MAX_ENTRY_BYTES`] unless the user trusts bigger ones).
    pub max_entry_bytes: u64,
    /// Resource modifiers applied to every object, in order ([`super::load_modifiers`] reads them).
    pub modifiers: Vec<super::modifiers::Modifiers>,
}

impl RestoreRequest {
    /// A request with the default limits.
    pub fn new(name: impl Into<String>, spec: RestoreSpec, dry_run: bool) -> Self {
        RestoreRequest {
            name: name.into(),
            spec,
            dry_run,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            modifiers: Vec::new(),
        }
    }
}

/// Live counters for progress displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreProgress {
    /// Objects selected from the backup.
    pub total: u64,
    /// Objects decided (created, updated, unchanged, skipped or failed).
    pub done: u64,
}

/// `<backup>-<YYYYMMDDhhmmss>`, Velero's default restore name.
pub fn default_restore_name(backup: &str, now: Timestamp) -> String {
    format!("{backup}-{}", now.strftime("%Y%m%d%H%M%S"))
}

/// Results gathered while applying, from the tasks of a wave.
struct Tally<'p> {
    results: Mutex<Noted>,
    pending: Mutex<Vec<Pending>>,
    done: AtomicU64,
    progress: &'p watch::Sender<RestoreProgress>,
}

impl Tally<'_> {
    fn record(&self, applied: Applied) {
        match applied {
            Applied::Done(result) => self.note(result),
            Applied::Retry(pending) => self.pending.lock().expect("pending lock").push(pending),
            Applied::NotSelected => {}
        }
        let count = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.progress.send_modify(|p| p.done = count);
    }

    fn note(&self, result: ItemResult) {
        self.results.lock().expect("results lock").push(result);
    }
}

/// What the results come to, noted as they arrive: the results themselves compressed, and what the record
/// and the waits need (counts, the problems, the CRDs restored).
#[derive(Default)]
struct Noted {
    items: ItemResultsWriter,
    /// Objects created or updated.
    restored: u64,
    /// Objects skipped because they differ from the cluster's.
    warnings: Vec<Problem>,
    /// Objects that failed.
    errors: Vec<Problem>,
    /// CRDs created, updated or found: the ones to wait for.
    crds: Vec<String>,
}

impl Noted {
    fn push(&mut self, r: ItemResult) {
        match r.outcome {
            ItemOutcome::Created | ItemOutcome::Updated => self.restored += 1,
            ItemOutcome::Skipped if !r.changes.is_empty() => self.warnings.push(problem_of(&r)),
            ItemOutcome::Failed => self.errors.push(problem_of(&r)),
            ItemOutcome::Skipped | ItemOutcome::Unchanged => {}
        }
        if r.resource == CRDS && r.outcome != ItemOutcome::Failed {
            self.crds.push(r.name.clone());
        }
        self.items.push(&r);
    }
}

/// Runs a restore from the backup `request.spec.backup_name` in `store`. Nothing in the cluster is ever
/// deleted; with `dry_run` nothing is changed at all and nothing is written to the store. An error means
/// nothing was applied; once objects may have been, the outcome is returned and recorded, as Failed with
/// its reason when the restore could not go on (a store outage mid-read, an archive changed since it
/// was verified).
pub async fn run_restore(
    client: &Client,
    store: &Store,
    request: RestoreRequest,
    progress: &watch::Sender<RestoreProgress>,
) -> Result<RestoreOutcome, RestoreError> {
    let started = Timestamp::now();
    let name = request.name.clone();
    if !cairn_kube::names::is_valid_name(&name) {
        return Err(RestoreError::Name(format!("invalid restore name {name:?}: {}", cairn_kube::names::NAME_RULE)));
    }
    super::check_mapping(&request.spec.namespace_mapping)?;
    store.check_reachable().await?;
    if !request.dry_run && store.get_bytes(&Layout.restore_keys(&name).record).await.is_ok() {
        return Err(RestoreError::Name(format!(
            "restore {name:?} already exists in {}; choose another name",
            store.location()
        )));
    }
    let log = Mutex::new(RunLog::default());
    let source = BackupSource::open(store, &request.spec.backup_name, request.max_entry_bytes).await?;
    let discovery = Discovery::run(client).await?;
    let selection = Selection::compile(&request.spec.selection, &discovery)?;
    let hook_entries = super::hooks::compile(&request.spec.hooks, &discovery).map_err(RestoreError::Hooks)?;
    let mut choice = Choice::new(selection.clone());
    let archived = source.index(|entry| choice.note(&entry)).await?;
    let chosen = choice.finish();
    log.lock().expect("log lock").info(format!(
        "restore {name} from backup {} ({archived} objects in the archive, {} chosen){}",
        source.name,
        chosen.total(),
        if request.dry_run { ", dry run" } else { "" }
    ));
    progress.send_modify(|p| p.total = chosen.total());

    let rules = Rules {
        selection: &selection,
        transform: Transform {
            namespace_mapping: &request.spec.namespace_mapping,
            backup_name: &source.name,
            restore_name: &name,
            preserve_node_ports: request.spec.preserve_node_ports,
        },
        policy: request.spec.existing_resource_policy,
        dry_run: request.dry_run,
        hooks: &hook_entries,
        modifiers: &request.modifiers,
    };
    let (planned_namespaces, planned_types) = planned(&chosen, &rules);
    let applier = Applier::new(client, discovery, rules, planned_namespaces, planned_types);
    let tally = Tally {
        results: Mutex::new(Noted::default()),
        pending: Mutex::new(Vec::new()),
        done: AtomicU64::new(0),
        progress,
    };
    let mut failure = apply_waves(&applier, &source, &chosen, &request, &tally, &log).await.err();
    if failure.is_none() {
        retry_rounds(&applier, &tally, &log).await;
    } else {
        // The restore stops here: what waited for a later round is reported as not applied.
        for pending in std::mem::take(&mut *tally.pending.lock().expect("pending lock")) {
            let reason = format!("not applied: the restore stopped ({})", pending.reason);
            tally.note(pending.desired.result(ItemOutcome::Failed, Some(reason)));
        }
    }
    let pods_with_hooks = applier.take_exec_hooks();
    let hooks = if failure.is_none() && !request.dry_run && !pods_with_hooks.is_empty() {
        log.lock()
            .expect("log lock")
            .info(format!("running the exec hooks of {} restored pod(s)", pods_with_hooks.len()));
        super::hooks::run_exec_hooks(client, pods_with_hooks).await
    } else {
        Vec::new()
    };
    let noted = tally.results.into_inner().expect("results lock");
    let log = log.into_inner().expect("log lock");
    finish(store, &request, source.name, started, Finished { noted, hooks }, log, failure.take()).await
}

/// What was done: each object's result and each exec hook's run.
struct Finished {
    noted: Noted,
    hooks: Vec<HookRun>,
}

/// In a dry run, the namespaces and CRD types the restore would create, which count as present for what
/// follows; in a real run, none (they are created on the way).
fn planned(chosen: &Chosen, rules: &Rules<'_>) -> (BTreeSet<String>, BTreeSet<String>) {
    let namespaces = if rules.dry_run {
        chosen.namespaces.iter().map(|ns| rules.transform.target_namespace(ns).to_owned()).collect()
    } else {
        BTreeSet::new()
    };
    (namespaces, chosen.crds.clone())
}

/// Applies the chosen objects wave by wave, in as few passes over the archive as its order allows (one for
/// Cairn's backups, but for related objects found late; at most one per wave). Stops at the first error of
/// a pass (the store failed, the archive changed); what was applied until then is in the tally.
async fn apply_waves(
    applier: &Applier<'_>,
    source: &BackupSource,
    chosen: &Chosen,
    request: &RestoreRequest,
    tally: &Tally<'_>,
    log: &Mutex<RunLog>,
) -> Result<(), RestoreError> {
    let budget = budget(request.max_entry_bytes);
    log.lock().expect("log lock").info(match chosen.passes.len() {
        1 => "the archive holds the chosen objects in restore order: it is read once".to_owned(),
        n => format!("the archive is read {n} times, each time for the waves whose objects follow one another"),
    });
    for waves in &chosen.passes {
        let expected: u64 = waves.iter().map(|w| chosen.per_wave[*w]).sum();
        let (sender, receiver) = mpsc::channel(PARALLEL_ITEMS * 2);
        let reader = source.read_pass(chosen.wanted(waves), expected, budget.clone(), sender).await?;
        let mut items = received(receiver);
        let mut applied = Ok(());
        for &wave in waves {
            // The objects come in wave order: this wave's are the next ones, and the wave ends (every request
            // answered) before the next one's first object is sent.
            let count = chosen.per_wave[wave];
            match apply_items(applier, (&mut items).take(count as usize), tally).await {
                Ok(received) if received == count => {
                    if wave == 0 && !request.dry_run {
                        let crds = tally.results.lock().expect("results lock").crds.clone();
                        applier.settle_crds(&crds, log).await;
                    }
                }
                // The pass stopped early: its result says why, if it failed.
                Ok(received) => {
                    let problem = format!("the archive ended after {received} of a wave's {count} objects");
                    applied = Err(RestoreError::Archive(problem));
                    break;
                }
                Err(error) => {
                    applied = Err(error);
                    break;
                }
            }
        }
        // What was read ahead is dropped, and with it the reader, if it was still reading.
        drop(items);
        reader.await.map_err(|e| RestoreError::Archive(e.to_string()))??;
        applied?;
    }
    Ok(())
}

/// What a pass sends, as a stream.
fn received(
    receiver: mpsc::Receiver<Result<ReadItem, RestoreError>>,
) -> impl Stream<Item = Result<ReadItem, RestoreError>> + Unpin {
    Box::pin(stream::unfold(receiver, |mut r| async move { r.recv().await.map(|x| (x, r)) }))
}

/// Applies what a pass sends, [`PARALLEL_ITEMS`] at a time, until it ends; returns how many objects came,
/// or the first error.
async fn apply_items(
    applier: &Applier<'_>,
    items: impl Stream<Item = Result<ReadItem, RestoreError>>,
    tally: &Tally<'_>,
) -> Result<u64, RestoreError> {
    let mut failure = None;
    let mut count = 0;
    items
        .map(|received| async move {
            let ReadItem { entry, bytes, share } = received?;
            let prepared = decide::prepare(&entry, &bytes, applier.rules());
            drop(bytes);
            let applied = applier.apply_prepared(prepared).await;
            drop(share);
            Ok(applied)
        })
        .buffer_unordered(PARALLEL_ITEMS)
        .for_each(|applied| {
            match applied {
                Ok(applied) => {
                    count += 1;
                    tally.record(applied);
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
            async {}
        })
        .await;
    failure.map_or(Ok(count), Err)
}

/// Retries what could not be applied yet (a namespace or type that appeared later), a few rounds apart;
/// what still cannot be applied after the last round fails with its reason.
async fn retry_rounds(applier: &Applier<'_>, tally: &Tally<'_>, log: &Mutex<RunLog>) {
    for round in 1..=RETRY_ROUNDS {
        let retry: Vec<Pending> = std::mem::take(&mut *tally.pending.lock().expect("pending lock"));
        if retry.is_empty() {
            break;
        }
        log.lock().expect("log lock").info(format!("retry round {round}: {} objects", retry.len()));
        tokio::time::sleep(Duration::from_millis(500 * u64::from(round))).await;
        applier.rediscover(log).await;
        for pending in retry {
            match applier.apply(pending.desired).await {
                Applied::Retry(p) if round == RETRY_ROUNDS => {
                    tally.note(p.desired.result(ItemOutcome::Failed, Some(p.reason)))
                }
                Applied::Done(result) => tally.note(result),
                Applied::Retry(p) => tally.pending.lock().expect("pending lock").push(p),
                Applied::NotSelected => {}
            }
        }
    }
}

/// A problem of one object, for the warnings and errors lists.
fn problem_of(r: &ItemResult) -> Problem {
    Problem {
        resource: Some(r.resource.clone()),
        namespace: r.namespace.clone(),
        name: Some(r.name.clone()),
        reason: match (&r.reason, r.changes.is_empty()) {
            (Some(reason), true) => reason.clone(),
            (Some(reason), false) => format!("{reason}; differing fields: {}", r.changes.join(", ")),
            (None, _) => String::new(),
        },
    }
}

/// Builds the outcome and, unless this is a dry run, writes it under `restores/<name>/`. With `failure`,
/// the restore is Failed with that reason, and its results say what was applied before it stopped.
async fn finish(
    store: &Store,
    request: &RestoreRequest,
    backup: String,
    started: Timestamp,
    finished: Finished,
    mut log: RunLog,
    failure: Option<RestoreError>,
) -> Result<RestoreOutcome, RestoreError> {
    let Finished { noted: Noted { items, restored, mut warnings, mut errors, .. }, hooks } = finished;
    let items = items.finish();
    for hook in &hooks {
        let problem = |reason: String| Problem {
            resource: Some(cairn_kube::resources::PODS.to_owned()),
            namespace: Some(hook.namespace.clone()),
            name: Some(hook.pod.clone()),
            reason,
        };
        let what = format!("exec restore hook ({}) in container {:?}", hook.source, hook.container);
        let message = hook.message.clone().unwrap_or_default();
        let last = hook.output.last().map(|l| format!("; last output: {l}")).unwrap_or_default();
        match hook.outcome {
            HookOutcome::Succeeded => {
                log.info(format!("{what} of {}/{}: exited with 0 in {} ms", hook.namespace, hook.pod, hook.duration_ms))
            }
            HookOutcome::Failed => errors.push(problem(format!("{what} failed: {message}{last}"))),
            HookOutcome::Skipped => warnings.push(problem(format!("{what}: {message}"))),
        }
    }
    for w in &warnings {
        log.warn(w.to_string());
    }
    for e in &errors {
        log.error(e.to_string());
    }
    let failure_reason = failure.map(|error| {
        let reason = format!("{error}; {restored} objects were restored before it stopped, and stay");
        log.error(format!("restore failed: {reason}"));
        errors.push(Problem { resource: None, namespace: None, name: None, reason: reason.clone() });
        reason
    });
    let phase = match (&failure_reason, request.dry_run, errors.is_empty()) {
        (Some(_), _, _) => RestorePhase::Failed,
        (None, true, _) => RestorePhase::DryRun,
        (None, false, true) => RestorePhase::Completed,
        (None, false, false) => RestorePhase::PartiallyFailed,
    };
    log.info(format!("restore {} {}: {restored} objects restored of {}", request.name, phase.as_str(), items.len()));
    let mut spec = request.spec.clone();
    spec.backup_name = backup;
    let record = RestoreRecord {
        api_version: API_VERSION.to_owned(),
        kind: "Restore".to_owned(),
        metadata: RecordMeta { name: request.name.clone(), labels: BTreeMap::new() },
        spec,
        status: RestoreStatus {
            phase,
            start_timestamp: started,
            completion_timestamp: Timestamp::now(),
            total_items: items.len() as u64,
            items_restored: restored,
            warnings: warnings.len() as u64,
            errors: errors.len() as u64,
            failure_reason,
        },
    };
    let mut outcome = RestoreOutcome { restore: record, items, warnings, errors, hooks };
    if !request.dry_run
        && let Err(error) = write_results(store, &outcome, &log).await
    {
        outcome.warnings.push(Problem {
            resource: None,
            namespace: None,
            name: None,
            reason: format!("the restore's results could not be stored: {error}"),
        });
    }
    Ok(outcome)
}

async fn write_results(store: &Store, outcome: &RestoreOutcome, log: &RunLog) -> Result<(), StoreError> {
    let keys = Layout.restore_keys(&outcome.restore.metadata.name);
    // Both side files are serialized straight from the results (no JSON tree of every object in between).
    let mut list = ResourceList::default();
    for r in outcome.items.iter() {
        let type_key = format!("{}/{}", r.api_version, r.kind);
        let (name, outcome) = (r.name.as_str(), r.outcome.as_str());
        match &r.namespace {
            Some(ns) => list.push_parts(&type_key, &[ns, "/", name, "(", outcome, ")"]),
            None => list.push_parts(&type_key, &[name, "(", outcome, ")"]),
        }
    }
    #[derive(serde::Serialize)]
    struct StoredResults<'a> {
        warnings: &'a [Problem],
        errors: &'a [Problem],
        items: &'a ItemResults,
        hooks: &'a [HookRun],
    }
    let results = StoredResults {
        warnings: &outcome.warnings,
        errors: &outcome.errors,
        items: &outcome.items,
        hooks: &outcome.hooks,
    };
    // The record first and create-only: a restore of the same name written meanwhile (another cluster on the
    // same bucket) keeps its files, and this one's are not written.
    store.create_json(&keys.record, &outcome.restore).await?;
    store.put_gzip_json(&keys.resource_list, &list).await?;
    store.put_gzip_json(&keys.results, &results).await?;
    store.put_gzip_text(&keys.log, &log.text()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_carry_the_time() {
        let at: Timestamp = "2026-11-28T04:05:06Z".parse().unwrap();
        assert_eq!(default_restore_name("nightly", at), "nightly-20261128040506");
    }
}
