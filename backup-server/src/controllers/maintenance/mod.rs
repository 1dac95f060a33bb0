//! NodeMaintenance: a New object is validated (its nodes exist, its options parse), gets the finalizer that
//! uncordons, and is drained by a task of this process ([`run`]). A Draining object nobody here drains was
//! left by a server that stopped: its drain is resumed (cordoning and evicting again are harmless, and the
//! deadline still counts from the first start). Deleting the object stops its drain and uncordons its nodes,
//! except those another NodeMaintenance still holds.

mod run;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use cairn_api::{MaintenancePhase, NodeMaintenance, UNCORDON_FINALIZER};
use jiff::Timestamp;
use k8s_openapi::{api::core::v1::Node, apimachinery::pkg::apis::meta::v1::Time};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use node_maintenance::{
    NodeError,
    cordon::{self, Cordon},
    drain::DrainOptions,
};
use serde_json::json;

use super::{KubeContext, ReconcileError, patch_status};
use crate::context::Context;

/// Reconciles one NodeMaintenance.
pub(crate) async fn reconcile(object: Arc<NodeMaintenance>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = object.name_any();
    let api = context.api::<NodeMaintenance>();
    // The watch cache may lag behind this server's own status writes: decide on a fresh read.
    let Some(maintenance) = api.get_opt(&name).await.doing(|| format!("reading node maintenance {name}"))? else {
        return Ok(Action::await_change());
    };
    if maintenance.metadata.deletion_timestamp.is_some() {
        return release(&maintenance, &context).await;
    }
    let phase = maintenance.phase();
    if phase.is_final() || context.is_running(&key(&maintenance)) {
        return Ok(Action::await_change());
    }
    if !maintenance.finalizers().iter().any(|f| f == UNCORDON_FINALIZER) {
        let mut finalizers = maintenance.finalizers().to_vec();
        finalizers.push(UNCORDON_FINALIZER.to_owned());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": maintenance.resource_version()}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .doing(|| format!("adding the finalizer to node maintenance {name}"))?;
    }
    match validate(&maintenance, &context).await? {
        Err(problem) => {
            tracing::warn!(maintenance = %name, "failed validation: {problem}");
            let status = json!({
                "phase": MaintenancePhase::FailedValidation,
                "lastError": problem,
                "completionTimestamp": Time(Timestamp::now()),
            });
            patch_status(&api, &name, maintenance.uid().as_deref(), status).await?;
        }
        Ok(plan) => run::start(&context, maintenance, plan),
    }
    Ok(Action::await_change())
}

/// What this process runs is keyed by uid: a deleted and re-created object of the same name is another one.
fn key(maintenance: &NodeMaintenance) -> String {
    format!("nodemaintenance/{}", maintenance.uid().unwrap_or_default())
}

/// A NodeMaintenance's spec, as the drain runs it.
pub(crate) struct Planned {
    /// The nodes, in the spec's order, each once.
    nodes: Vec<String>,
    /// kubectl drain's options.
    options: DrainOptions,
    /// How many nodes drain at once.
    concurrency: usize,
    /// How long the drain may take from its start.
    deadline: Option<Duration>,
}

/// The spec checked: nodes that exist, a pod selector and a deadline that parse; the inner error names the
/// problem and its fix.
async fn validate(maintenance: &NodeMaintenance, context: &Context) -> Result<Result<Planned, String>, ReconcileError> {
    let spec = &maintenance.spec;
    let mut seen = BTreeSet::new();
    let nodes: Vec<String> = spec.nodes.iter().filter(|n| seen.insert(n.as_str())).cloned().collect();
    if nodes.is_empty() {
        return Ok(Err("spec.nodes is empty: name the nodes to drain".into()));
    }
    let drain = &spec.drain;
    if let Some(selector) = &drain.pod_selector
        && let Err(error) = cairn_kube::selectors::parse_label_selector(selector)
    {
        return Ok(Err(format!("spec.drain.podSelector {selector:?} is not a label selector: {error}")));
    }
    let deadline = match spec.deadline.as_deref().map(cairn_kube::duration::parse_duration) {
        None => None,
        Some(Ok(deadline)) => Some(deadline),
        Some(Err(error)) => return Ok(Err(format!("spec.deadline: {error}"))),
    };
    let api: Api<Node> = Api::all(context.client.clone());
    for node in &nodes {
        if api.get_opt(node).await.doing(|| format!("reading node {node}"))?.is_none() {
            return Ok(Err(NodeError::NotFound(node.clone()).to_string()));
        }
    }
    let options = DrainOptions {
        ignore_daemonsets: drain.ignore_daemon_sets,
        delete_emptydir_data: drain.delete_empty_dir_data,
        force: drain.force,
        disable_eviction: drain.disable_eviction,
        grace_period: drain.grace_period_seconds,
        timeout: None,
        pod_selector: drain.pod_selector.clone(),
        skip_wait_for_delete_timeout: drain.skip_wait_for_delete_timeout_seconds.map(Duration::from_secs),
        ignore_capacity: drain.ignore_capacity,
    };
    let concurrency = usize::from(spec.concurrency.unwrap_or(1).max(1));
    Ok(Ok(Planned { nodes, options, concurrency, deadline }))
}

/// A deleted NodeMaintenance: its drain stops, its nodes are uncordoned (but for those another maintenance
/// still holds), and the finalizer goes.
async fn release(maintenance: &NodeMaintenance, context: &Context) -> Result<Action, ReconcileError> {
    let name = maintenance.name_any();
    if let Some(drain) = context.drains.lock().expect("drains lock").remove(&key(maintenance)) {
        drain.abort();
    }
    if !maintenance.finalizers().iter().any(|f| f == UNCORDON_FINALIZER) {
        return Ok(Action::await_change());
    }
    let api = context.api::<NodeMaintenance>();
    let others = api.list(&ListParams::default()).await.doing(|| "listing node maintenances".into())?;
    let held: BTreeSet<String> = others
        .items
        .iter()
        .filter(|m| m.uid() != maintenance.uid() && m.metadata.deletion_timestamp.is_none())
        .filter(|m| !matches!(m.phase(), MaintenancePhase::FailedValidation | MaintenancePhase::DeadlineExceeded))
        .flat_map(|m| m.spec.nodes.iter().cloned())
        .collect();
    for node in maintenance.spec.nodes.iter().filter(|n| !held.contains(*n)) {
        match cordon::set(&context.client, node, Cordon::Uncordon).await {
            Ok(_) | Err(NodeError::NotFound(_)) => {}
            Err(error) => return Err(ReconcileError::Transient(format!("uncordoning node {node}: {error}"))),
        }
    }
    tracing::info!(maintenance = %name, "deleted: its drain stopped and its nodes were uncordoned");
    let finalizers: Vec<&String> = maintenance.finalizers().iter().filter(|f| *f != UNCORDON_FINALIZER).collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": maintenance.resource_version()}});
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(Action::await_change()),
        Err(error) if cairn_kube::errors::is_not_found(&error) => Ok(Action::await_change()),
        Err(error) => Err(ReconcileError::Kube { action: format!("removing the finalizer of {name}"), error }),
    }
}
