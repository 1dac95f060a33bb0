//! The collect step of a backup: every list task of the plan page by page (several types at once) into the
//! archive sink, then the related objects the selected ones need (their PVCs and PVs, the cluster RBAC of
//! their service accounts, the CRDs of their custom resources). Problems become warnings or errors of the
//! run; nothing here decides what is selected (`selection`) or where it is written (`sink`).

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream};
use kube::Client;
use tokio::sync::{mpsc, watch};

use cairn_kube::{
    client::get_bytes,
    discovery::ResourceType,
    errors::{describe, is_not_found},
    report::{Problem, RunLog, Severity},
    resources::{CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, CRDS, PVCS, PVS},
};

use super::{
    BackupProgress, BackupResults,
    collect::{self, Listed, list_filtered, page_url, parse_object},
    plan::{BackupPlan, ListTask},
    related::{Related, binding_role_for},
    sink::SinkObject,
};
use crate::selection::is_namespace_type;

/// Resource types listed at once.
const CONCURRENT_LISTS: usize = 4;

/// What the list tasks of one backup share: the plan's selection, the sink, what was written, the problems.
pub(super) struct Collector<'a> {
    plan: &'a BackupPlan,
    sender: mpsc::Sender<Vec<SinkObject>>,
    related: Mutex<Related>,
    results: Mutex<BackupResults>,
    log: Mutex<RunLog>,
    items: AtomicU64,
    lists_done: AtomicU64,
}

/// What the collect step leaves for the commit step.
pub(super) struct Collected {
    /// Whether every list ran to its end (false: the sink went away).
    pub(super) complete: bool,
    /// Counts, warnings and errors so far.
    pub(super) results: BackupResults,
    /// The run's log so far.
    pub(super) log: RunLog,
    /// Objects sent to the archive.
    pub(super) items: u64,
}

impl Collector<'_> {
    fn problem(
        &self,
        severity: Severity,
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
        self.log.lock().expect("log lock").problem(severity, &problem);
        let mut results = self.results.lock().expect("results lock");
        match severity {
            Severity::Error => results.errors.push(problem),
            Severity::Warning => results.warnings.push(problem),
        }
    }

    /// Whether a listed object is selected (the rule is the selection's).
    fn selects(&self, resource_type: &ResourceType, object: &Listed) -> bool {
        let left_out = || {
            resource_type.group_resource() == cairn_kube::resources::PODS
                && object
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| self.plan.left_out_pods.contains(&(ns.clone(), object.name.clone())))
        };
        !object.deleting
            && (self.plan.left_out_pods.is_empty() || !left_out())
            && self.plan.selection.selects_listed(
                is_namespace_type(resource_type),
                object.namespace.as_deref(),
                &object.name,
                &object.labels,
                &self.plan.excluded_namespaces,
            )
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
                related.note(&group_resource, object.namespace.as_deref(), &object.name, object.json.received());
            }
            if self.plan.custom_types.contains(&group_resource.to_string()) {
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
async fn run_list(client: &Client, shared: &Collector<'_>, task: &ListTask) -> bool {
    let resource_type = &task.resource_type;
    let selector = if is_namespace_type(resource_type) { None } else { shared.plan.selection.server_label_selector() };
    let fetch = |token: Option<String>| {
        let url = page_url(resource_type, task.namespace.as_deref(), selector.as_deref(), token.as_deref());
        async move { get_bytes(client, &url).await }
    };
    let unreadable = |error: String| {
        let reason = format!("the server's list response could not be read: {error}");
        shared.problem(Severity::Error, resource_type, task.namespace.as_deref(), None, reason);
    };
    let mut fetched = fetch(None).await;
    loop {
        let body = match fetched {
            Ok(body) => body,
            Err(error) => {
                let missing = is_not_found(&error);
                let reason = if missing {
                    "the type is no longer served; skipped".to_owned()
                } else {
                    format!("listing failed, objects of this type are missing from the backup: {}", describe(&error))
                };
                let severity = if missing { Severity::Warning } else { Severity::Error };
                shared.problem(severity, resource_type, task.namespace.as_deref(), None, reason);
                return true;
            }
        };
        let page = match collect::split_page(&body) {
            Ok(page) => page,
            Err(error) => {
                unreadable(error);
                return true;
            }
        };
        // The next page is asked for first: the API server prepares it while this one is parsed and written.
        let next = page.continue_token.clone().map(|token| fetch(Some(token)));
        let write = async {
            match page.parse(resource_type) {
                Ok(items) => {
                    let selected: Vec<Listed> =
                        items.into_iter().filter(|o| shared.selects(resource_type, o)).collect();
                    Some(shared.send(resource_type, selected).await)
                }
                Err(error) => {
                    unreadable(error.to_string());
                    None
                }
            }
        };
        let (written, next) = match next {
            Some(next) => {
                let (next, written) = tokio::join!(next, write);
                (written, Some(next))
            }
            None => (write.await, None),
        };
        drop(body);
        match (written, next) {
            // Unreadable (said above), or the last page.
            (None, _) | (Some(true), None) => return true,
            // The sink is gone.
            (Some(false), _) => return false,
            (Some(true), Some(next)) => fetched = next,
        }
    }
}

/// GETs the given objects that are not in the archive yet and sends them to the sink. False when the sink
/// is gone.
async fn fetch_related(
    client: &Client,
    shared: &Collector<'_>,
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
        match get_bytes(client, &resource_type.object_path(ns.as_deref(), &name)).await {
            Ok(body) => match parse_object(resource_type, body) {
                Ok(object) if !object.deleting => objects.push(object),
                Ok(_) => {}
                Err(e) => shared.problem(
                    Severity::Error,
                    resource_type,
                    ns.as_deref(),
                    Some(&name),
                    format!("unreadable: {e}"),
                ),
            },
            Err(e) if is_not_found(&e) => shared.problem(
                Severity::Warning,
                resource_type,
                ns.as_deref(),
                Some(&name),
                "referenced by a backed-up object but not found".into(),
            ),
            Err(e) => {
                let reason = format!("GET failed: {}", describe(&e));
                shared.problem(Severity::Error, resource_type, ns.as_deref(), Some(&name), reason)
            }
        }
    }
    shared.send(resource_type, objects).await
}

/// Fetches related objects that are not in the archive yet, one GET each.
async fn add_related(client: &Client, shared: &Collector<'_>) -> bool {
    let (selection, discovery) = (&shared.plan.selection, &shared.plan.discovery);
    let type_of = |group_resource: &str| discovery.by_group_resource(group_resource);
    // Pods -> PVCs, then PVCs -> PVs (the new PVCs add volumes).
    if let Some(pvc) = type_of(PVCS).filter(|t| selection.includes_resource(t)) {
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
    if let Some(pv) = type_of(PVS).filter(|t| selection.includes_related(t)) {
        let volumes: Vec<_> =
            shared.related.lock().expect("related lock").volumes.iter().map(|n| (None, n.clone())).collect();
        if !fetch_related(client, shared, pv, volumes).await {
            return false;
        }
    }
    // ServiceAccounts -> ClusterRoleBindings naming them -> their ClusterRoles.
    let accounts = shared.related.lock().expect("related lock").service_accounts.clone();
    if let (Some(crb), Some(role), false) =
        (type_of(CLUSTER_ROLE_BINDINGS), type_of(CLUSTER_ROLES), accounts.is_empty())
        && selection.includes_related(crb)
    {
        let listed = list_filtered(client, crb, |b| binding_role_for(b.json.received(), &accounts).is_some()).await;
        let bindings = listed.unwrap_or_else(|e| {
            let reason = format!("listing bindings of backed-up service accounts failed: {e}");
            shared.problem(Severity::Error, crb, None, None, reason);
            Vec::new()
        });
        let roles: BTreeSet<String> =
            bindings.iter().filter_map(|b| binding_role_for(b.json.received(), &accounts)).collect();
        let bindings: Vec<Listed> = {
            let related = shared.related.lock().expect("related lock");
            bindings.into_iter().filter(|b| !related.is_written(CLUSTER_ROLE_BINDINGS, None, &b.name)).collect()
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
    if let Some(crd) = type_of(CRDS).filter(|t| selection.includes_related(t)) {
        let definitions: Vec<_> =
            shared.related.lock().expect("related lock").definitions.iter().map(|d| (None, d.clone())).collect();
        if !fetch_related(client, shared, crd, definitions).await {
            return false;
        }
    }
    true
}

/// Runs every list task of `plan` into `sender`, then the related objects, reporting progress as it goes;
/// `bytes` counts what the sink has written. Ends when done or when the sink goes away.
pub(super) async fn collect(
    client: &Client,
    plan: &BackupPlan,
    sender: mpsc::Sender<Vec<SinkObject>>,
    progress: &watch::Sender<BackupProgress>,
    bytes: &AtomicU64,
    results: BackupResults,
    log: RunLog,
) -> Collected {
    let collector = Collector {
        plan,
        sender,
        related: Mutex::new(Related::default()),
        results: Mutex::new(results),
        log: Mutex::new(log),
        items: AtomicU64::new(0),
        lists_done: AtomicU64::new(0),
    };
    let report = |collector: &Collector<'_>| {
        progress.send_modify(|p| {
            p.items = collector.items.load(Ordering::Relaxed);
            p.lists_done = collector.lists_done.load(Ordering::Relaxed) as usize;
            p.bytes = bytes.load(Ordering::Relaxed);
        })
    };
    let complete = {
        let (tasks, collector, report) = (&plan.tasks, &collector, &report);
        // The lists of one restore wave run together, and all of them end before the next wave's begin: the
        // archive then holds objects in the order a restore applies them, and a restore reads it once.
        let lists = async {
            let mut start = 0;
            while start < tasks.len() {
                let end = start + tasks[start..].iter().take_while(|t| t.wave == tasks[start].wave).count();
                // Indices, not tasks, go through the stream: closures over borrowed tasks would not be
                // provably Send.
                let alive = stream::iter(start..end)
                    .map(|index| async move {
                        let alive = run_list(client, collector, &tasks[index]).await;
                        collector.lists_done.fetch_add(1, Ordering::Relaxed);
                        report(collector);
                        alive
                    })
                    .buffer_unordered(CONCURRENT_LISTS)
                    .all(|alive| async move { alive })
                    .await;
                if !alive {
                    return false;
                }
                start = end;
            }
            true
        };
        let ticker = async {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                report(collector);
                // Pages come and go by the thousand: what they leave free goes back to the system.
                cairn_kube::memory::release_freed();
            }
        };
        let alive = tokio::select! { alive = lists => alive, () = ticker => unreachable!("the ticker never ends") };
        alive && add_related(client, collector).await
    };
    let Collector { results, log, items, .. } = collector;
    Collected {
        complete,
        results: results.into_inner().expect("results lock"),
        log: log.into_inner().expect("log lock"),
        items: items.load(Ordering::Relaxed),
    }
}
