//! Cordoning and uncordoning: whether the scheduler may place new pods on a node (`spec.unschedulable`).
//! Pods already there stay; pods evicted earlier do not come back by themselves.

use cairn_kube::errors::is_not_found;
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::NodeError;

/// Which way a node is turned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cordon {
    /// No new pods (`spec.unschedulable: true`).
    Cordon,
    /// New pods welcome again.
    Uncordon,
}

/// What turning a node did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CordonOutcome {
    /// The node changed.
    Changed,
    /// The node was that way already.
    Unchanged,
}

/// Cordons or uncordons `node`.
pub async fn set(client: &Client, node: &str, cordon: Cordon) -> Result<CordonOutcome, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let current = nodes.get(node).await.map_err(|error| match is_not_found(&error) {
        true => NodeError::NotFound(node.to_owned()),
        false => NodeError::kube(format!("reading node {node}"), error),
    })?;
    let unschedulable = current.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let wanted = cordon == Cordon::Cordon;
    if unschedulable == wanted {
        return Ok(CordonOutcome::Unchanged);
    }
    let patch = json!({"spec": {"unschedulable": if wanted { json!(true) } else { json!(null) }}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|error| NodeError::kube(format!("patching node {node}"), error))?;
    Ok(CordonOutcome::Changed)
}
