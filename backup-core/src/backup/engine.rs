//! Running one backup: validate, discover, select, list every selected type page by page (several types at
//! once) into the archive sink, add related objects, then write the side files and, last and create-only,
//! the record. Any failure after the first byte leaves a Failed record (when the store still answers) and
//! never a Completed one.

use cairn_api::Compression;
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream};
use jiff::Timestamp;
use kube::Client;
use tokio::sync::{mpsc, watch};

use super::{
    BackupRecord, BackupResults, BackupSpec, BackupStatus, Phase, Progress,
    collect::{Listed, page_url, parse_object, parse_page},
    related::{Related, binding_role_for, kinds},
    sink::{SinkObject, spawn_sink},
};
use cairn_api::{API_VERSION, RecordMeta};
use cairn_kube::{
    client::get_text,
    discovery::{Discovery, DiscoveryError, ResourceType},
    duration::{DurationError, expires_at, format_duration},
    errors::{describe, is_not_found},
    report::{Problem, RunLog},
};

use crate::{
    archive::FORMAT_VERSION,
    selection::{Selection, SelectionError, excluded_by_label, is_namespace_type},
    store::{Layout, Store, StoreError},
};

/// Resource types listed at once.
const CONCURRENT_LISTS: usize = 4;
/// Pages waiting for the archive sink.
const SINK_QUEUE: usize = 4;

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

/// One LIST to run: a type across all namespaces, or in one.
struct ListTask<'d> {
    resource_type: &'d ResourceType,
    namespace: Option<String>,
}

/// State the list tasks share.
struct Shared<'a> {
    selection: &'a Selection,
    excluded_namespaces: &'a BTreeSet<String>,
    custom_types: &'a BTreeSet<String>,
    sender: mpsc::Sender<Vec<SinkObject>>,
    related: Mutex<Related>,
    results: Mutex<BackupResults>,
    log: Mutex<RunLog>,
    items: AtomicU64,
    lists_done: AtomicU64,
}

impl Shared<'_> {
    fn problem(
        &self,
        error: bool,
        resource_type: &ResourceType,
        namespace: Option<&str>,
        name: Option<&str>,
        reason: String,
    ) {
        let problem = Problem {
            resource: Some(resource_type.group_resource()),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            reason,
        };
        let mut log = self.log.lock().expect("log lock");
        let mut results = self.results.lock().expect("results lock");
        if error {
            log.error(problem.to_string());
            results.errors.push(problem);
        } else {
            log.warn(problem.to_string());
            results.warnings.push(problem);
        }
    }

    /// Whether a listed object is selected.
    fn selects(&self, resource_type: &ResourceType, object: &Listed) -> bool {
        if object.deleting || excluded_by_label(&object.labels) {
            return false;
        }
        if is_namespace_type(resource_type) {
            return self.selection.includes_namespace(&object.name) && !self.excluded_namespaces.contains(&object.name);
        }
        if let Some(ns) = &object.namespace
            && (!self.selection.includes_namespace(ns) || self.excluded_namespaces.contains(ns))
        {
            return false;
        }
        self.selection.labels_match(&object.labels)
    }

    /// Sends selected objects to the sink, noting what they refer to. False when the sink is gone.
    async fn send(&self, resource_type: &ResourceType, objects: Vec<Listed>) -> bool {
        if objects.is_empty() {
            return true;
        }
        let group_resource: Arc<str> = resource_type.group_resource().into();
        let version: Arc<str> = resource_type.version.as_str().into();
        let type_key: Arc<str> = format!("{}/{}", resource_type.api_version(), resource_type.kind).into();
        {
            let mut related = self.related.lock().expect("related lock");
            for object in &objects {
                related.note(&group_resource, object.namespace.as_deref(), &object.name, &object.json);
            }
            if self.custom_types.contains(&group_resource.to_string()) {
                related.definitions.insert(group_resource.to_string());
            }
        }
        let count = objects.len() as u64;
        let page = objects
            .into_iter()
            .map(|o| SinkObject {
                group_resource: group_resource.clone(),
                version: version.clone(),
                type_key: type_key.clone(),
                namespace: o.namespace,
                name: o.name,
                json: o.json,
            })
            .collect();
        let sent = self.sender.send(page).await.is_ok();
        self.items.fetch_add(count, Ordering::Relaxed);
        sent
    }
}

/// Lists one task page by page into the sink. False when the sink is gone.
async fn run_list(client: &Client, shared: &Shared<'_>, task: &ListTask<'_>) -> bool {
    let resource_type = task.resource_type;
    let selector = if is_namespace_type(resource_type) { None } else { shared.selection.server_label_selector() };
    let mut token: Option<String> = None;
    loop {
        let url = page_url(resource_type, task.namespace.as_deref(), selector.as_deref(), token.as_deref());
        let body = match get_text(client, &url).await {
            Ok(body) => body,
            Err(error) => {
                let missing = is_not_found(&error);
                let reason = if missing {
                    "the type is no longer served; skipped".to_owned()
                } else {
                    format!("listing failed, objects of this type are missing from the backup: {}", describe(&error))
                };
                shared.problem(!missing, resource_type, task.namespace.as_deref(), None, reason);
                return true;
            }
        };
        let page = match parse_page(resource_type, &body) {
            Ok(page) => page,
            Err(error) => {
                let reason = format!("the server's list response could not be read: {error}");
                shared.problem(true, resource_type, task.namespace.as_deref(), None, reason);
                return true;
            }
        };
        drop(body);
        let selected: Vec<Listed> = page.items.into_iter().filter(|o| shared.selects(resource_type, o)).collect();
        if !shared.send(resource_type, selected).await {
            return false;
        }
        match page.continue_token {
            Some(next) => token = Some(next),
            None => return true,
        }
    }
}

/// Lists every object of a type that is small by nature (namespaces, cluster role bindings), keeping those
/// `keep` accepts.
async fn list_filtered(
    client: &Client,
    resource_type: &ResourceType,
    mut keep: impl FnMut(&Listed) -> bool,
) -> Result<Vec<Listed>, String> {
    let mut kept = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let body =
            get_text(client, &page_url(resource_type, None, None, token.as_deref())).await.map_err(|e| describe(&e))?;
        let page = parse_page(resource_type, &body).map_err(|e| format!("unreadable list: {e}"))?;
        kept.extend(page.items.into_iter().filter(|o| keep(o)));
        match page.continue_token {
            Some(next) => token = Some(next),
            None => return Ok(kept),
        }
    }
}

/// GETs the given objects that are not in the archive yet and sends them to the sink. False when the sink
/// is gone.
async fn fetch_related(
    client: &Client,
    shared: &Shared<'_>,
    resource_type: &ResourceType,
    targets: Vec<(Option<String>, String)>,
) -> bool {
    let targets: Vec<_> = {
        let related = shared.related.lock().expect("related lock");
        let group_resource = resource_type.group_resource();
        targets.into_iter().filter(|(ns, name)| !related.is_written(&group_resource, ns.as_deref(), name)).collect()
    };
    let mut objects = Vec::new();
    for (ns, name) in targets {
        match get_text(client, &resource_type.object_path(ns.as_deref(), &name)).await {
            Ok(body) => match parse_object(resource_type, &body) {
                Ok(object) if !object.deleting => objects.push(object),
                Ok(_) => {}
                Err(e) => shared.problem(true, resource_type, ns.as_deref(), Some(&name), format!("unreadable: {e}")),
            },
            Err(e) if is_not_found(&e) => shared.problem(
                false,
                resource_type,
                ns.as_deref(),
                Some(&name),
                "referenced by a backed-up object but not found".into(),
            ),
            Err(e) => {
                shared.problem(true, resource_type, ns.as_deref(), Some(&name), format!("GET failed: {}", describe(&e)))
            }
        }
    }
    shared.send(resource_type, objects).await
}

/// Fetches related objects that are not in the archive yet, one GET each.
async fn add_related(client: &Client, shared: &Shared<'_>, discovery: &Discovery) -> bool {
    let selection = shared.selection;
    let type_of = |group_resource: &str| discovery.by_group_resource(group_resource);
    // Pods -> PVCs, then PVCs -> PVs (the new PVCs add volumes).
    if let Some(pvc) = type_of(kinds::PVC).filter(|t| selection.includes_resource(t)) {
        let claims: Vec<_> = shared
            .related
            .lock()
            .expect("related lock")
            .claims
            .iter()
            .map(|(ns, n)| (Some(ns.clone()), n.clone()))
            .collect();
        if !fetch_related(client, shared, pvc, claims).await {
            return false;
        }
    }
    if let Some(pv) = type_of(kinds::PV).filter(|t| selection.includes_related(t)) {
        let volumes: Vec<_> =
            shared.related.lock().expect("related lock").volumes.iter().map(|n| (None, n.clone())).collect();
        if !fetch_related(client, shared, pv, volumes).await {
            return false;
        }
    }
    // ServiceAccounts -> ClusterRoleBindings naming them -> their ClusterRoles.
    let accounts = shared.related.lock().expect("related lock").service_accounts.clone();
    if let (Some(crb), Some(role), false) =
        (type_of(kinds::CLUSTER_ROLE_BINDING), type_of(kinds::CLUSTER_ROLE), accounts.is_empty())
        && selection.includes_related(crb)
    {
        let listed = list_filtered(client, crb, |b| binding_role_for(&b.json, &accounts).is_some()).await;
        let bindings = listed.unwrap_or_else(|e| {
            let reason = format!("listing bindings of backed-up service accounts failed: {e}");
            shared.problem(true, crb, None, None, reason);
            Vec::new()
        });
        let roles: BTreeSet<String> = bindings.iter().filter_map(|b| binding_role_for(&b.json, &accounts)).collect();
        let bindings: Vec<Listed> = {
            let related = shared.related.lock().expect("related lock");
            bindings.into_iter().filter(|b| !related.is_written(kinds::CLUSTER_ROLE_BINDING, None, &b.name)).collect()
        };
        if !shared.send(crb, bindings).await {
            return false;
        }
        if selection.includes_related(role)
            && !fetch_related(client, shared, role, roles.into_iter().map(|r| (None, r)).collect()).await
        {
            return false;
        }
    }
    // Custom resources -> their CRDs.
    if let Some(crd) = type_of(kinds::CRD).filter(|t| selection.includes_related(t)) {
        let definitions: Vec<_> =
            shared.related.lock().expect("related lock").definitions.iter().map(|d| (None, d.clone())).collect();
        if !fetch_related(client, shared, crd, definitions).await {
            return false;
        }
    }
    true
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
    let name = request.name.clone();
    validate_name(&name)?;
    let ttl = super::retention::effective_ttl(&request.spec.ttl, cairn_api::DEFAULT_TTL)?;
    let compression = request.spec.compression.unwrap_or(Compression::Zstd);
    store.check_reachable().await?;
    if super::read_backup(store, &name).await?.is_some() {
        return Err(BackupError::Exists { name, location: store.location().to_string() });
    }
    let mut log = RunLog::default();
    let started = Timestamp::now();
    log.info(format!("backup {name} starting into {}", store.location()));
    let discovery = Discovery::run(client).await?;
    let selection = Selection::compile(&request.spec.selection, &discovery)?;
    let mut results = BackupResults::default();
    for warning in &discovery.warnings {
        let reason = format!(
            "API group {} could not be read; its types are not backed up: {}",
            warning.group_version, warning.reason
        );
        log.warn(&reason);
        results.warnings.push(Problem { resource: None, namespace: None, name: None, reason });
    }
    for unknown in &selection.unknown_resources {
        let reason = "no such resource type on this server; ignored".to_owned();
        log.warn(format!("{unknown}: {reason}"));
        results.warnings.push(Problem { resource: Some(unknown.clone()), namespace: None, name: None, reason });
    }

    // Namespaces carrying the exclude label take all their objects out.
    let mut excluded_namespaces = BTreeSet::new();
    if let Some(namespaces) = discovery.by_group_resource("namespaces") {
        let labelled = list_filtered(client, namespaces, |n| excluded_by_label(&n.labels)).await.map_err(|e| {
            BackupError::Failed {
                name: name.clone(),
                reason: format!("listing namespaces failed: {e}"),
                recorded: false,
            }
        })?;
        excluded_namespaces.extend(labelled.into_iter().map(|n| n.name));
    }
    // Custom resource types are exactly those a CRD defines; a CRD's name is its `plural.group`. Only the
    // names are kept: CRDs can be large.
    let mut custom_types = BTreeSet::new();
    if let Some(crds) = discovery.by_group_resource(kinds::CRD) {
        list_filtered(client, crds, |crd| {
            custom_types.insert(crd.name.clone());
            false
        })
        .await
        .map_err(|e| BackupError::Failed {
            name: name.clone(),
            reason: format!("listing CustomResourceDefinitions failed: {e}"),
            recorded: false,
        })?;
    }

    // CRDs and namespaces first, so an archive read front to back meets them before what needs them.
    let mut types: Vec<&ResourceType> = discovery.types.iter().filter(|t| selection.includes_type(t)).collect();
    types.sort_by_key(|t| match t.group_resource().as_str() {
        kinds::CRD => 0,
        "namespaces" => 1,
        _ => 2,
    });
    let exact = selection.exact_namespaces();
    let tasks: Vec<ListTask<'_>> = types
        .iter()
        .flat_map(|&resource_type| match (&exact, resource_type.namespaced) {
            (Some(names), true) => names
                .iter()
                .filter(|ns| !excluded_namespaces.contains(*ns))
                .map(|ns| ListTask { resource_type, namespace: Some(ns.clone()) })
                .collect(),
            _ => vec![ListTask { resource_type, namespace: None }],
        })
        .collect();
    log.info(format!("{} resource types selected, {} lists to run", types.len(), tasks.len()));
    let lists_total = tasks.len();
    progress.send_modify(|p| p.lists_total = lists_total);

    let run = run_id(started);
    let keys = Layout.backup_keys(&name, &run, compression);
    let (sender, receiver) = mpsc::channel(SINK_QUEUE);
    let bytes = Arc::new(AtomicU64::new(0));
    let mtime = started.as_second().max(0) as u64;
    let sink = spawn_sink(store, &keys, compression, mtime, receiver, bytes.clone());
    let shared = Shared {
        selection: &selection,
        excluded_namespaces: &excluded_namespaces,
        custom_types: &custom_types,
        sender,
        related: Mutex::new(Related::default()),
        results: Mutex::new(results),
        log: Mutex::new(log),
        items: AtomicU64::new(0),
        lists_done: AtomicU64::new(0),
    };
    let report = |shared: &Shared<'_>| {
        progress.send_modify(|p| {
            p.items = shared.items.load(Ordering::Relaxed);
            p.lists_done = shared.lists_done.load(Ordering::Relaxed) as usize;
            p.bytes = bytes.load(Ordering::Relaxed);
        })
    };
    let collected = {
        // Indices, not tasks, go through the stream: closures over borrowed tasks would not be provably Send.
        let (tasks, shared, report) = (&tasks, &shared, &report);
        let lists = stream::iter(0..tasks.len())
            .map(|index| async move {
                let alive = run_list(client, shared, &tasks[index]).await;
                shared.lists_done.fetch_add(1, Ordering::Relaxed);
                report(shared);
                alive
            })
            .buffer_unordered(CONCURRENT_LISTS)
            .all(|alive| async move { alive });
        let ticker = async {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                report(shared);
            }
        };
        let alive = tokio::select! { alive = lists => alive, () = ticker => unreachable!("the ticker never ends") };
        alive && add_related(client, shared, &discovery).await
    };
    let Shared { sender, results, log, items, .. } = shared;
    drop(sender);
    let (mut results, mut log) = (results.into_inner().expect("results lock"), log.into_inner().expect("log lock"));
    let sink_result = sink.await.map_err(std::io::Error::other).and_then(|r| r);
    report_final(progress, items.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));

    let mut status = BackupStatus {
        phase: Phase::InProgress,
        format_version: FORMAT_VERSION.to_owned(),
        cairn_version: crate::VERSION.to_owned(),
        run: run.clone(),
        start_timestamp: started,
        completion_timestamp: None,
        expiration: expires_at(started, ttl),
        progress: Progress::default(),
        warnings: 0,
        errors: 0,
        failure_reason: None,
        archive: None,
    };
    let mut spec = request.spec.clone();
    spec.ttl = format_duration(ttl);
    spec.compression = Some(compression);
    if spec.storage_location.is_empty() {
        spec.storage_location = store.location().to_string();
    }
    let mut record = BackupRecord {
        api_version: API_VERSION.to_owned(),
        kind: "Backup".to_owned(),
        metadata: RecordMeta { name: name.clone(), labels: request.labels.clone() },
        spec,
        status: status.clone(),
    };

    let output = match (collected, sink_result) {
        (true, Ok(output)) => output,
        (_, Err(error)) => {
            let reason = format!("writing the archive failed: {error}");
            return Err(fail(store, &keys, record, &mut log, reason).await);
        }
        (false, Ok(_)) => {
            return Err(fail(store, &keys, record, &mut log, "the archive writer stopped early".into()).await);
        }
    };
    let total: u64 = output.counts.values().sum();
    results.counts = output.counts;
    status.progress = Progress { total_items: total, items_backed_up: total };
    status.warnings = results.warnings.len() as u64;
    status.errors = results.errors.len() as u64;
    status.archive = Some(output.summary);
    status.completion_timestamp = Some(Timestamp::now());
    status.phase = if results.errors.is_empty() { Phase::Completed } else { Phase::PartiallyFailed };
    log.info(format!(
        "backup {name} {}: {total} objects, {} warnings, {} errors",
        status.phase.as_str(),
        status.warnings,
        status.errors
    ));
    record.status = status;

    let side_files = async {
        store.put_gzip_json(&keys.results, &results).await?;
        store.put_gzip_json(&keys.resource_list, &output.resource_list).await?;
        store.put_gzip_text(&keys.log, &log.text()).await
    };
    if let Err(error) = side_files.await {
        let reason = format!("writing the backup's side files failed: {error}");
        return Err(fail(store, &keys, record, &mut log, reason).await);
    }
    match super::create_record(store, &record).await {
        Ok(()) => Ok(BackupOutcome { record, results }),
        Err(StoreError::AlreadyExists { location, .. }) => {
            // A retried create whose first attempt went through finds its own record: the backup is done.
            if let Ok(Some(stored)) = super::read_backup(store, &name).await
                && stored.status.run == record.status.run
            {
                return Ok(BackupOutcome { record, results });
            }
            // Another writer took the name meanwhile: remove only this attempt's files.
            let _ = store.delete_keys(&attempt_keys(&keys)).await;
            Err(BackupError::Exists { name, location })
        }
        Err(error) => {
            let reason = format!("writing the backup record failed: {error}");
            Err(fail(store, &keys, record, &mut log, reason).await)
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

fn attempt_keys(keys: &crate::store::BackupKeys) -> Vec<object_store::path::Path> {
    vec![
        keys.archive.clone(),
        keys.manifest.clone(),
        keys.results.clone(),
        keys.resource_list.clone(),
        keys.log.clone(),
    ]
}

/// Ends a started backup as Failed: removes this attempt's data, keeps its log, and writes a Failed
/// record (create-only) if the store still answers.
async fn fail(
    store: &Store,
    keys: &crate::store::BackupKeys,
    mut record: BackupRecord,
    log: &mut RunLog,
    reason: String,
) -> BackupError {
    log.error(format!("backup failed: {reason}"));
    let data: Vec<_> = attempt_keys(keys).into_iter().filter(|k| *k != keys.log).collect();
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
