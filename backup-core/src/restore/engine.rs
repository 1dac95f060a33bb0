//! Running one restore: check and index the backup, then apply it wave by wave (one streaming pass over the
//! archive per wave, objects of a wave in parallel), retrying objects whose prerequisites were not there yet,
//! and finally store the results beside the backup. Decisions come from `transform` (pure); this module
//! holds the I/O.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use futures::{StreamExt, stream};
use jiff::Timestamp;
use kube::Client;
use serde_json::{Value, json};
use tokio::sync::{RwLock, mpsc, watch};

use super::{
    ExistingResourcePolicy, IndexEntry, ItemOutcome, ItemResult, RestoreError, RestoreOutcome, RestorePhase,
    RestoreRecord, RestoreSpec, RestoreStatus,
    order::{CRDS, WAVES, wave_of},
    source::BackupSource,
    transform::{Transform, changed_fields, merge_patch, skip_reason, strip},
};
use crate::{
    apiclient::{describe, get_text},
    backup::{BackupLog, Problem, RecordMeta},
    discovery::{Discovery, ResourceType},
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

/// An object that could not be applied yet, kept for a later round.
struct Pending {
    entry: IndexEntry,
    object: Value,
    reason: String,
}

enum Applied {
    Done(ItemResult),
    Retry(Pending),
    NotSelected,
}

struct Context<'a> {
    client: &'a Client,
    discovery: RwLock<Discovery>,
    selection: &'a Selection,
    transform: Transform<'a>,
    policy: ExistingResourcePolicy,
    dry_run: bool,
    /// Namespaces known to exist (or, in a dry run, to be created by this restore).
    namespaces: Mutex<BTreeSet<String>>,
    /// Custom resource types whose CRD this restore creates (in a dry run they are not served yet).
    planned_types: BTreeSet<String>,
}

fn item(entry: &IndexEntry, object: &Value, outcome: ItemOutcome, reason: Option<String>) -> ItemResult {
    ItemResult {
        resource: entry.group_resource.clone(),
        api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned),
        name: object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&entry.name).to_owned(),
        outcome,
        reason,
        changes: Vec::new(),
    }
}

/// Failures that a later round may cure: a missing namespace or type, a webhook whose service is not up.
fn retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => match status.code {
            404 => true,
            429 | 503 | 504 => true,
            500 => {
                status.message.contains("failed calling webhook") || status.message.contains("no endpoints available")
            }
            403 => status.message.contains("being terminated"),
            _ => false,
        },
        _ => false,
    }
}

/// Sends `body` and discards the server's echo of the object.
async fn send(
    client: &Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Result<(), kube::Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(serde_json::to_vec(body).expect("JSON serializes"))
        .expect("a request builds");
    client.request_text(request).await.map(drop)
}

impl Context<'_> {
    fn dry_run_query(&self) -> &'static str {
        if self.dry_run { "?dryRun=All" } else { "" }
    }

    /// The type to restore `entry` at: its backed-up version, if the cluster serves it.
    async fn resource_type(&self, entry: &IndexEntry, api_version: &str) -> Result<ResourceType, String> {
        let discovery = self.discovery.read().await;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let Some(base) = discovery.types.iter().find(|t| t.group_resource() == entry.group_resource) else {
            return Err(format!("the cluster does not serve {}", entry.group_resource));
        };
        let served = discovery.group_versions.get(group).cloned().unwrap_or_default();
        if !served.iter().any(|v| v == version) {
            return Err(format!(
                "the cluster does not serve {api_version} (it serves {} {})",
                entry.group_resource,
                served
                    .iter()
                    .map(|v| if group.is_empty() { v.clone() } else { format!("{group}/{v}") })
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(ResourceType { version: version.to_owned(), ..base.clone() })
    }

    /// Makes sure `namespace` exists before objects go into it (a bare one when the backup has none).
    async fn ensure_namespace(&self, namespace: &str) -> Result<(), kube::Error> {
        if self.namespaces.lock().expect("namespaces lock").contains(namespace) {
            return Ok(());
        }
        let path = format!("/api/v1/namespaces/{namespace}");
        match get_text(self.client, &path).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let mut namespace_object =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
                self.transform.apply("namespaces", &mut namespace_object);
                namespace_object["metadata"]["name"] = Value::String(namespace.to_owned());
                if !self.dry_run {
                    match send(
                        self.client,
                        http::Method::POST,
                        "/api/v1/namespaces",
                        "application/json",
                        &namespace_object,
                    )
                    .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(status)) if status.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        self.namespaces.lock().expect("namespaces lock").insert(namespace.to_owned());
        Ok(())
    }

    /// Decides and applies one archived object.
    async fn apply_archived(&self, entry: &IndexEntry, bytes: &[u8]) -> Applied {
        let mut object: Value = match serde_json::from_slice(bytes) {
            Ok(object) => object,
            Err(e) => {
                return Applied::Done(item(
                    entry,
                    &Value::Null,
                    ItemOutcome::Failed,
                    Some(format!("unreadable JSON: {e}")),
                ));
            }
        };
        if entry.group_resource != "namespaces" {
            let labels: BTreeMap<String, String> = object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            if !self.selection.labels_match(&labels) {
                return Applied::NotSelected;
            }
        }
        if let Some(reason) = skip_reason(&entry.group_resource, &object) {
            return Applied::Done(item(entry, &object, ItemOutcome::Skipped, Some(reason)));
        }
        self.transform.apply(&entry.group_resource, &mut object);
        self.apply(Pending { entry: entry.clone(), object, reason: String::new() }).await
    }

    /// Creates the object, or handles the one already there by policy.
    async fn apply(&self, pending: Pending) -> Applied {
        let Pending { entry, object, .. } = pending;
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let resource_type = match self.resource_type(&entry, &api_version).await {
            Ok(t) => t,
            Err(reason) if self.dry_run && self.planned_types.contains(&entry.group_resource) => {
                let note = format!("after its CRD is created ({reason} yet; not checked by the server)");
                return Applied::Done(item(&entry, &object, ItemOutcome::Created, Some(note)));
            }
            Err(reason) => return Applied::Retry(Pending { entry, object, reason }),
        };
        let namespace = if resource_type.namespaced {
            object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned)
        } else {
            None
        };
        if let Some(ns) = &namespace
            && let Err(e) = self.ensure_namespace(ns).await
        {
            let reason = format!("namespace {ns} could not be created: {}", describe(&e));
            return Applied::Retry(Pending { entry, object, reason });
        }
        let path = format!("{}{}", resource_type.list_path(namespace.as_deref()), self.dry_run_query());
        match send(self.client, http::Method::POST, &path, "application/json", &object).await {
            Ok(_) => Applied::Done(item(&entry, &object, ItemOutcome::Created, None)),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.existing(entry, object, &resource_type, namespace.as_deref()).await
            }
            Err(e)
                if self.dry_run
                    && namespace.as_ref().is_some_and(|ns| self.namespace_is_planned(ns))
                    && retryable(&e) =>
            {
                let note = "after its namespace is created (not checked by the server)".to_owned();
                Applied::Done(item(&entry, &object, ItemOutcome::Created, Some(note)))
            }
            Err(e) if retryable(&e) => Applied::Retry(Pending { entry, object, reason: describe(&e) }),
            Err(e) => Applied::Done(item(&entry, &object, ItemOutcome::Failed, Some(describe(&e)))),
        }
    }

    fn namespace_is_planned(&self, namespace: &str) -> bool {
        self.namespaces.lock().expect("namespaces lock").contains(namespace)
    }

    /// The object exists: equal -> unchanged; different -> skipped (policy none) or merge-patched (update).
    async fn existing(
        &self,
        entry: IndexEntry,
        object: Value,
        resource_type: &ResourceType,
        namespace: Option<&str>,
    ) -> Applied {
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&entry.name).to_owned();
        let path = resource_type.object_path(namespace, &name);
        let mut live: Value = match get_text(self.client, &path).await.map(|t| serde_json::from_str(&t)) {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => {
                return Applied::Done(item(
                    &entry,
                    &object,
                    ItemOutcome::Failed,
                    Some(format!("unreadable live object: {e}")),
                ));
            }
            Err(e) => return Applied::Done(item(&entry, &object, ItemOutcome::Failed, Some(describe(&e)))),
        };
        strip(&entry.group_resource, &mut live, self.transform.preserve_node_ports);
        let mut desired = object.clone();
        strip(&entry.group_resource, &mut desired, self.transform.preserve_node_ports);
        let Some(difference) = merge_patch(&live, &desired) else {
            return Applied::Done(item(&entry, &object, ItemOutcome::Unchanged, None));
        };
        let changes = changed_fields(&difference);
        match self.policy {
            ExistingResourcePolicy::None => {
                let reason =
                    "exists in the cluster and differs; left alone (--existing-resource-policy update would patch it)";
                let mut result = item(&entry, &object, ItemOutcome::Skipped, Some(reason.to_owned()));
                result.changes = changes;
                Applied::Done(result)
            }
            ExistingResourcePolicy::Update => {
                // The difference, plus the restore's labels.
                let mut patch = difference;
                if let (Some(patch), Some(labels)) = (patch.as_object_mut(), object.pointer("/metadata/labels")) {
                    let metadata = patch.entry("metadata").or_insert_with(|| json!({}));
                    if let Some(metadata) = metadata.as_object_mut() {
                        let merged = metadata.entry("labels").or_insert_with(|| json!({}));
                        if let (Some(merged), Some(labels)) = (merged.as_object_mut(), labels.as_object()) {
                            for (k, v) in labels {
                                merged.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    }
                }
                let path = format!("{path}{}", self.dry_run_query());
                match send(self.client, http::Method::PATCH, &path, "application/merge-patch+json", &patch).await {
                    Ok(_) => {
                        let mut result = item(&entry, &object, ItemOutcome::Updated, None);
                        result.changes = changes;
                        Applied::Done(result)
                    }
                    Err(e) => Applied::Done(item(
                        &entry,
                        &object,
                        ItemOutcome::Failed,
                        Some(format!("patch failed: {}", describe(&e))),
                    )),
                }
            }
        }
    }

    /// Waits until the named CRDs are Established, then reads discovery again.
    async fn settle_crds(&self, names: &[String], log: &Mutex<BackupLog>) {
        for name in names {
            let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
            let mut established = false;
            for _ in 0..300 {
                if let Ok(Ok(crd)) = get_text(self.client, &path).await.map(|t| serde_json::from_str::<Value>(&t)) {
                    established = crd["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
                    if established {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if !established {
                log.lock().expect("log lock").warn(format!("CRD {name} was not Established within 60 s"));
            }
        }
        self.rediscover(log).await;
    }

    async fn rediscover(&self, log: &Mutex<BackupLog>) {
        match Discovery::run(self.client).await {
            Ok(fresh) => *self.discovery.write().await = fresh,
            Err(e) => log.lock().expect("log lock").warn(format!("discovery failed, keeping the previous one: {e}")),
        }
    }
}

/// Whether an archived object is selected by namespace, resource and the cluster-scope rule.
fn selected(entry: &IndexEntry, selection: &Selection) -> bool {
    if wave_of(&entry.group_resource).is_none() || !selection.includes_group_resource(&entry.group_resource) {
        return false;
    }
    match &entry.namespace {
        Some(ns) => selection.includes_namespace(ns),
        None if entry.group_resource == "namespaces" => selection.includes_namespace(&entry.name),
        None => match selection.include_cluster_resources() {
            Some(include) => include,
            // Like Velero: with some namespaces selected, only what their objects need comes along.
            None => {
                selection.all_namespaces()
                    || entry.group_resource == CRDS
                    || entry.group_resource == "persistentvolumes"
            }
        },
    }
}

/// Runs a restore from the backup `request.spec.backup_name` in `store`. Nothing in the cluster is ever
/// deleted; with `dry_run` nothing is changed at all and nothing is written to the store.
pub async fn run_restore(
    client: &Client,
    store: &Store,
    request: RestoreRequest,
    progress: &watch::Sender<RestoreProgress>,
) -> Result<RestoreOutcome, RestoreError> {
    let started = Timestamp::now();
    let name = request.name.clone();
    if !crate::object_name::is_valid_name(&name) {
        return Err(RestoreError::Name(format!("invalid restore name {name:?}: {}", crate::object_name::NAME_RULE)));
    }
    super::check_mapping(&request.spec.namespace_mapping)?;
    store.check_reachable().await?;
    let keys = Layout.restore_keys(&name);
    if !request.dry_run && store.get_bytes(&keys.record).await.is_ok() {
        return Err(RestoreError::Name(format!(
            "restore {name:?} already exists in {}; choose another name",
            store.location()
        )));
    }
    let log = Mutex::new(BackupLog::default());
    let source = BackupSource::open(store, &request.spec.backup_name).await?;
    let index = source.index().await?;
    log.lock().expect("log lock").info(format!(
        "restore {name} from backup {} ({} objects in the archive){}",
        source.name,
        index.len(),
        if request.dry_run { ", dry run" } else { "" }
    ));
    let discovery = Discovery::run(client).await?;
    let selection = Selection::compile(&request.spec.selection, &discovery)?;
    let chosen: Vec<IndexEntry> = index.into_iter().filter(|e| selected(e, &selection)).collect();
    progress.send_modify(|p| p.total = chosen.len() as u64);

    let transform = Transform {
        namespace_mapping: &request.spec.namespace_mapping,
        backup_name: &source.name,
        restore_name: &name,
        preserve_node_ports: request.spec.preserve_node_ports,
    };
    // In a dry run, namespaces and CRDs that the restore would create count as present for what follows.
    let planned_namespaces: BTreeSet<String> = if request.dry_run {
        chosen
            .iter()
            .filter_map(
                |e| if e.group_resource == "namespaces" { Some(e.name.as_str()) } else { e.namespace.as_deref() },
            )
            .map(|ns| transform.target_namespace(ns).to_owned())
            .collect()
    } else {
        BTreeSet::new()
    };
    let planned_types: BTreeSet<String> =
        chosen.iter().filter(|e| e.group_resource == CRDS).map(|e| e.name.clone()).collect();
    let context = Context {
        client,
        discovery: RwLock::new(discovery),
        selection: &selection,
        transform,
        policy: request.spec.existing_resource_policy,
        dry_run: request.dry_run,
        namespaces: Mutex::new(planned_namespaces),
        planned_types,
    };

    let mut waves: Vec<Vec<IndexEntry>> = vec![Vec::new(); WAVES];
    for entry in chosen {
        let wave = wave_of(&entry.group_resource).expect("selected entries have a wave");
        waves[wave].push(entry);
    }
    let results = Mutex::new(Vec::new());
    let pending = Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicU64::new(0);
    let record = |applied: Applied| {
        match applied {
            Applied::Done(result) => results.lock().expect("results lock").push(result),
            Applied::Retry(p) => pending.lock().expect("pending lock").push(p),
            Applied::NotSelected => {}
        }
        let count = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress.send_modify(|p| p.done = count);
    };
    for (wave, entries) in waves.into_iter().enumerate().filter(|(_, e)| !e.is_empty()) {
        let by_path: HashMap<String, IndexEntry> = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
        let (sender, receiver) = mpsc::channel(PARALLEL_ITEMS * 2);
        let reader = source.read_entries(Some(by_path.keys().cloned().collect::<HashSet<_>>()), sender).await?;
        let items = stream::unfold(receiver, |mut r| async move { r.recv().await.map(|x| (x, r)) });
        let (context, by_path, record) = (&context, &by_path, &record);
        let mut failure = None;
        items
            .map(|received| async move {
                match received {
                    Ok((path, bytes)) => Ok(context.apply_archived(&by_path[&path], &bytes).await),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(PARALLEL_ITEMS)
            .for_each(|applied| {
                match applied {
                    Ok(applied) => record(applied),
                    Err(e) => failure = Some(e),
                }
                async {}
            })
            .await;
        reader.await.map_err(|e| RestoreError::Archive(e.to_string()))??;
        if let Some(error) = failure {
            return Err(error);
        }
        if wave == 0 && !request.dry_run {
            let crds: Vec<String> = results
                .lock()
                .expect("results lock")
                .iter()
                .filter(|r| r.resource == CRDS && r.outcome != ItemOutcome::Failed)
                .map(|r| r.name.clone())
                .collect();
            context.settle_crds(&crds, &log).await;
        }
    }
    for round in 1..=RETRY_ROUNDS {
        let retry: Vec<Pending> = std::mem::take(&mut *pending.lock().expect("pending lock"));
        if retry.is_empty() {
            break;
        }
        log.lock().expect("log lock").info(format!("retry round {round}: {} objects", retry.len()));
        tokio::time::sleep(Duration::from_millis(500 * u64::from(round))).await;
        context.rediscover(&log).await;
        for p in retry {
            match context.apply(p).await {
                Applied::Retry(p) if round == RETRY_ROUNDS => {
                    let reason = Some(p.reason.clone());
                    results.lock().expect("results lock").push(item(&p.entry, &p.object, ItemOutcome::Failed, reason));
                }
                applied => match applied {
                    Applied::Done(result) => results.lock().expect("results lock").push(result),
                    Applied::Retry(p) => pending.lock().expect("pending lock").push(p),
                    Applied::NotSelected => {}
                },
            }
        }
    }

    let items = results.into_inner().expect("results lock");
    finish(store, &request, source.name, started, items, log.into_inner().expect("log lock")).await
}

/// Builds the outcome and, unless this is a dry run, writes it under `restores/<name>/`.
async fn finish(
    store: &Store,
    request: &RestoreRequest,
    backup: String,
    started: Timestamp,
    items: Vec<ItemResult>,
    mut log: BackupLog,
) -> Result<RestoreOutcome, RestoreError> {
    let problem = |r: &ItemResult| Problem {
        resource: Some(r.resource.clone()),
        namespace: r.namespace.clone(),
        name: Some(r.name.clone()),
        reason: match (&r.reason, r.changes.is_empty()) {
            (Some(reason), true) => reason.clone(),
            (Some(reason), false) => format!("{reason}; differing fields: {}", r.changes.join(", ")),
            (None, _) => String::new(),
        },
    };
    let warnings: Vec<Problem> =
        items.iter().filter(|r| r.outcome == ItemOutcome::Skipped && !r.changes.is_empty()).map(problem).collect();
    let errors: Vec<Problem> = items.iter().filter(|r| r.outcome == ItemOutcome::Failed).map(problem).collect();
    for w in &warnings {
        log.warn(w.to_string());
    }
    for e in &errors {
        log.error(e.to_string());
    }
    let restored =
        items.iter().filter(|r| matches!(r.outcome, ItemOutcome::Created | ItemOutcome::Updated)).count() as u64;
    let phase = if request.dry_run {
        RestorePhase::DryRun
    } else if errors.is_empty() {
        RestorePhase::Completed
    } else {
        RestorePhase::PartiallyFailed
    };
    log.info(format!("restore {} {}: {restored} objects restored of {}", request.name, phase.as_str(), items.len()));
    let mut spec = request.spec.clone();
    spec.backup_name = backup;
    let record = RestoreRecord {
        api_version: crate::backup::API_VERSION.to_owned(),
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
        },
    };
    let mut outcome = RestoreOutcome { restore: record, items, warnings, errors };
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

async fn write_results(store: &Store, outcome: &RestoreOutcome, log: &BackupLog) -> Result<(), StoreError> {
    let keys = Layout.restore_keys(&outcome.restore.metadata.name);
    let mut list: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &outcome.items {
        let name = match &r.namespace {
            Some(ns) => format!("{ns}/{}({})", r.name, r.outcome.as_str()),
            None => format!("{}({})", r.name, r.outcome.as_str()),
        };
        list.entry(format!("{}/{}", r.api_version, r.kind)).or_default().push(name);
    }
    list.values_mut().for_each(|v| v.sort());
    // The record first and create-only: a restore of the same name written meanwhile (another cluster on the
    // same bucket) keeps its files, and this one's are not written.
    store.create_json(&keys.record, &outcome.restore).await?;
    store.put_gzip_json(&keys.resource_list, &list).await?;
    store
        .put_gzip_json(
            &keys.results,
            &json!({"warnings": outcome.warnings, "errors": outcome.errors, "items": outcome.items}),
        )
        .await?;
    store.put_gzip_text(&keys.log, &log.text()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::SelectionSpec;

    fn entry(gr: &str, ns: Option<&str>, name: &str) -> IndexEntry {
        IndexEntry {
            group_resource: gr.into(),
            namespace: ns.map(str::to_owned),
            name: name.into(),
            path: String::new(),
        }
    }

    #[test]
    fn restore_selection_keeps_crds_and_volumes_with_some_namespaces() {
        let discovery = Discovery::default();
        let some = Selection::compile(
            &SelectionSpec { included_namespaces: vec!["a".into()], ..Default::default() },
            &discovery,
        )
        .unwrap();
        assert!(selected(&entry("configmaps", Some("a"), "c"), &some));
        assert!(!selected(&entry("configmaps", Some("b"), "c"), &some));
        assert!(selected(&entry("namespaces", None, "a"), &some));
        assert!(selected(&entry(CRDS, None, "widgets.example.com"), &some));
        assert!(selected(&entry("persistentvolumes", None, "pv"), &some));
        assert!(!selected(&entry("clusterroles.rbac.authorization.k8s.io", None, "r"), &some));
        assert!(!selected(&entry("events", Some("a"), "e"), &some));
    }

    #[test]
    fn default_names_carry_the_time() {
        let at: Timestamp = "2026-11-28T04:05:06Z".parse().unwrap();
        assert_eq!(default_restore_name("nightly", at), "nightly-20261128040506");
    }
}
