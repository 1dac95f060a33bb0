//! Applying one object: the requests a restore sends (create, read what exists, patch, make a missing
//! namespace, wait for CRDs), each following what `decide.rs` says. No policy lives here.

use cairn_kube::errors::{is_conflict, is_not_found};
use std::{collections::BTreeSet, sync::Mutex, time::Duration};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    runtime::wait::{await_condition, conditions},
};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::{
    ItemOutcome, ItemResult,
    decide::{self, Desired, Existing, LEFT_ALONE, OnError, Prepared, Rules},
    hooks::PodExecHooks,
};
use cairn_kube::{
    client::{get_text, send_json as send},
    discovery::{Discovery, ResourceType},
    errors::describe,
    report::RunLog,
    resources::NAMESPACES,
};

/// Content types of what is sent.
const JSON: &str = "application/json";
const MERGE_PATCH: &str = "application/merge-patch+json";

/// How long a restored CRD may take to become Established before the restore goes on without it.
const CRD_WAIT: Duration = Duration::from_secs(60);

/// An object that could not be applied yet, kept for a later round.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The object.
    pub(crate) desired: Desired,
    /// Why it could not be applied.
    pub(crate) reason: String,
}

/// What applying one object came to.
#[derive(Debug)]
pub(crate) enum Applied {
    /// Decided: created, updated, unchanged, skipped or failed.
    Done(ItemResult),
    /// Not yet: try again in a later round.
    Retry(Pending),
    /// Not selected: no result.
    NotSelected,
}

/// Sends objects to the API server as the decisions say.
pub(crate) struct Applier<'a> {
    client: &'a Client,
    discovery: RwLock<Discovery>,
    rules: Rules<'a>,
    /// Namespaces known to exist (or, in a dry run, to be created by this restore).
    namespaces: Mutex<BTreeSet<String>>,
    /// Custom resource types whose CRD this restore creates (in a dry run they are not served yet).
    planned_types: BTreeSet<String>,
    /// The restored pods with exec hooks to run once everything is applied.
    exec_hooks: Mutex<Vec<PodExecHooks>>,
}

impl<'a> Applier<'a> {
    /// An applier; `planned_namespaces` and `planned_types` are what a dry run counts as present.
    pub(crate) fn new(
        client: &'a Client,
        discovery: Discovery,
        rules: Rules<'a>,
        planned_namespaces: BTreeSet<String>,
        planned_types: BTreeSet<String>,
    ) -> Self {
        Applier {
            client,
            discovery: RwLock::new(discovery),
            rules,
            namespaces: Mutex::new(planned_namespaces),
            planned_types,
            exec_hooks: Mutex::new(Vec::new()),
        }
    }

    fn dry_run_query(&self) -> &'static str {
        if self.rules.dry_run { "?dryRun=All" } else { "" }
    }

    /// The rules this applier decides by.
    pub(crate) fn rules(&self) -> &Rules<'a> {
        &self.rules
    }

    /// Applies what `decide::prepare` made of an archived object.
    pub(crate) async fn apply_prepared(&self, prepared: Prepared) -> Applied {
        match prepared {
            Prepared::Apply(desired) => self.apply(desired).await,
            Prepared::Done(result) => Applied::Done(result),
            Prepared::NotSelected => Applied::NotSelected,
        }
    }

    /// The type to restore at: the backed-up version, if the cluster serves it.
    async fn resource_type(&self, desired: &Desired) -> Result<ResourceType, String> {
        let discovery = self.discovery.read().await;
        let group_resource = &desired.entry.group_resource;
        let api_version = desired.api_version();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let Some(base) = discovery.types.iter().find(|t| t.group_resource() == *group_resource) else {
            return Err(format!("the cluster does not serve {group_resource}"));
        };
        let served = discovery.group_versions.get(group).cloned().unwrap_or_default();
        if !served.iter().any(|v| v == version) {
            return Err(format!(
                "the cluster does not serve {api_version} (it serves {group_resource} {})",
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
        let namespaces = self.discovery.read().await.by_group_resource(NAMESPACES).cloned();
        let namespaces = namespaces.unwrap_or_else(ResourceType::namespaces);
        match get_text(self.client, &namespaces.object_path(None, namespace)).await {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {
                let mut bare = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
                self.rules.transform.apply(NAMESPACES, &mut bare);
                bare["metadata"]["name"] = Value::String(namespace.to_owned());
                if !self.rules.dry_run {
                    let created = send(self.client, http::Method::POST, &namespaces.list_path(None), JSON, &bare).await;
                    match created {
                        Ok(()) => {}
                        Err(error) if is_conflict(&error) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        self.namespaces.lock().expect("namespaces lock").insert(namespace.to_owned());
        Ok(())
    }

    fn namespace_is_planned(&self, namespace: &str) -> bool {
        self.namespaces.lock().expect("namespaces lock").contains(namespace)
    }

    /// Creates the object, or handles the one already there by policy.
    /// The restored pods' exec hooks, taken.
    pub(crate) fn take_exec_hooks(&self) -> Vec<PodExecHooks> {
        std::mem::take(&mut *self.exec_hooks.lock().expect("hooks lock"))
    }

    /// Applies one object; a pod it creates or updates keeps its exec hooks for after the apply.
    pub(crate) async fn apply(&self, mut desired: Desired) -> Applied {
        let hooks = std::mem::take(&mut desired.exec_hooks);
        let namespace = desired.namespace(&self.rules).unwrap_or_default().to_owned();
        let pod = desired.name().to_owned();
        let mut applied = self.apply_once(desired).await;
        match &mut applied {
            Applied::Done(result)
                if !hooks.is_empty() && matches!(result.outcome, ItemOutcome::Created | ItemOutcome::Updated) =>
            {
                self.exec_hooks.lock().expect("hooks lock").push(PodExecHooks { namespace, pod, hooks });
            }
            Applied::Retry(pending) => pending.desired.exec_hooks = hooks,
            _ => {}
        }
        applied
    }

    /// Gives a created object back its archived field owners when a server-side apply owned any of them (the
    /// API server ignores managed fields on create, so they are patched in); otherwise its fields stay with
    /// the restore, which behaves the same for later updates and applies. A note when that failed.
    async fn restore_field_owners(
        &self,
        desired: &mut Desired,
        resource_type: &ResourceType,
        namespace: Option<&str>,
    ) -> Option<String> {
        let applied = desired
            .managed_fields
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|entries| entries.iter().any(|e| e["operation"] == "Apply"));
        if self.rules.dry_run || !applied {
            return None;
        }
        let fields = desired.managed_fields.take()?;
        let path = resource_type.object_path(namespace, desired.name());
        let patch = json!({"metadata": {"managedFields": fields}});
        match send(self.client, http::Method::PATCH, &path, MERGE_PATCH, &patch).await {
            Ok(()) => None,
            Err(error) => Some(format!("created, but its field owners could not be restored: {}", describe(&error))),
        }
    }

    async fn apply_once(&self, mut desired: Desired) -> Applied {
        let resource_type = match self.resource_type(&desired).await {
            Ok(t) => t,
            Err(reason) if self.rules.dry_run && self.planned_types.contains(&desired.entry.group_resource) => {
                let note = format!("after its CRD is created ({reason} yet; not checked by the server)");
                return Applied::Done(desired.result(ItemOutcome::Created, Some(note)));
            }
            Err(reason) => return Applied::Retry(Pending { desired, reason }),
        };
        if let Err(reason) = decide::check_type(&desired, &resource_type) {
            return Applied::Done(desired.result(ItemOutcome::Failed, Some(reason)));
        }
        let namespace = desired.namespace(&self.rules).map(str::to_owned);
        if let Some(ns) = &namespace
            && let Err(e) = self.ensure_namespace(ns).await
        {
            let reason = format!("namespace {ns} could not be created: {}", describe(&e));
            return Applied::Retry(Pending { desired, reason });
        }
        let path = format!("{}{}", resource_type.list_path(namespace.as_deref()), self.dry_run_query());
        let sent = send(self.client, http::Method::POST, &path, JSON, &desired.object).await;
        match sent {
            Ok(()) => {
                let note = self.restore_field_owners(&mut desired, &resource_type, namespace.as_deref()).await;
                Applied::Done(desired.result(ItemOutcome::Created, note))
            }
            Err(error) if is_conflict(&error) => self.existing(desired, &resource_type, namespace.as_deref()).await,
            Err(error) => {
                let planned = namespace.as_deref().is_some_and(|ns| self.namespace_is_planned(ns));
                match decide::on_create_error(&error, &self.rules, planned) {
                    OnError::Retry(reason) => Applied::Retry(Pending { desired, reason }),
                    OnError::AssumeCreated(note) => Applied::Done(desired.result(ItemOutcome::Created, Some(note))),
                    OnError::Failed(reason) => Applied::Done(desired.result(ItemOutcome::Failed, Some(reason))),
                }
            }
        }
    }

    /// The object exists: reads it and does what `decide::existing` says.
    async fn existing(&self, desired: Desired, resource_type: &ResourceType, namespace: Option<&str>) -> Applied {
        let path = resource_type.object_path(namespace, desired.name());
        let failed = |reason: String| Applied::Done(desired.result(ItemOutcome::Failed, Some(reason)));
        let live: Value = match get_text(self.client, &path).await.map(|t| serde_json::from_str(&t)) {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => return failed(format!("unreadable live object: {e}")),
            Err(e) => return failed(describe(&e)),
        };
        match decide::existing(&desired, live, &self.rules) {
            Existing::Unchanged => Applied::Done(desired.result(ItemOutcome::Unchanged, None)),
            Existing::Differs(changes) => {
                let mut result = desired.result(ItemOutcome::Skipped, Some(LEFT_ALONE.to_owned()));
                result.changes = changes;
                Applied::Done(result)
            }
            Existing::Patch(patch, changes) => {
                let path = format!("{path}{}", self.dry_run_query());
                match send(self.client, http::Method::PATCH, &path, MERGE_PATCH, &patch).await {
                    Ok(()) => {
                        let mut result = desired.result(ItemOutcome::Updated, None);
                        result.changes = changes;
                        Applied::Done(result)
                    }
                    Err(e) => failed(format!("patch failed: {}", describe(&e))),
                }
            }
        }
    }

    /// Waits until the named CRDs are Established (kube-runtime's condition), then reads discovery again.
    pub(crate) async fn settle_crds(&self, names: &[String], log: &Mutex<RunLog>) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in names {
            let established = await_condition(crds.clone(), name, conditions::is_crd_established());
            if !matches!(tokio::time::timeout(CRD_WAIT, established).await, Ok(Ok(_))) {
                log.lock().expect("log lock").warn(format!("CRD {name} was not Established within 60 s"));
            }
        }
        self.rediscover(log).await;
    }

    /// Reads discovery again (types appear as CRDs are established).
    pub(crate) async fn rediscover(&self, log: &Mutex<RunLog>) {
        match Discovery::run(self.client).await {
            Ok(fresh) => *self.discovery.write().await = fresh,
            Err(e) => log.lock().expect("log lock").warn(format!("discovery failed, keeping the previous one: {e}")),
        }
    }
}
