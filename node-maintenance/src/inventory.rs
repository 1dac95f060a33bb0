//! What each node is and holds: its status, roles, kubelet version, taints, pods, and the CPU and memory its
//! pods request against what it can allocate. [`summarize`] computes it from Node and Pod objects without I/O;
//! [`list`] reads them.

use std::collections::BTreeMap;

use cairn_kube::quantity::parse_quantity;
use k8s_openapi::api::core::v1::{Container, Node, Pod, Taint};
use kube::{
    Api, Client,
    api::{ListParams, ObjectList},
};
use serde::Serialize;

use crate::NodeError;

/// The label prefix that gives a node a role (`node-role.kubernetes.io/control-plane`).
const ROLE_PREFIX: &str = "node-role.kubernetes.io/";

/// One node at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    /// The Node's name.
    pub name: String,
    /// `Ready`, `NotReady` or `Unknown`, with `,SchedulingDisabled` when cordoned (as kubectl shows it).
    pub status: String,
    /// Whether new pods may be scheduled on it (not cordoned).
    pub schedulable: bool,
    /// Its roles, from its `node-role.kubernetes.io/<role>` labels.
    pub roles: Vec<String>,
    /// The kubelet's version.
    pub kubelet_version: String,
    /// Its internal address, when it reports one.
    pub internal_ip: Option<String>,
    /// Its taints, as `key=value:Effect`.
    pub taints: Vec<String>,
    /// Pods bound to it that have not finished.
    pub pods: usize,
    /// The pods it may hold (`allocatable.pods`).
    pub pod_capacity: u64,
    /// CPU in cores.
    pub cpu: Usage,
    /// Memory in bytes.
    pub memory: Usage,
}

/// A resource requested by a node's pods against what the node can allocate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// What the node's pods request.
    pub requested: f64,
    /// What the node can allocate to pods.
    pub allocatable: f64,
}

impl Usage {
    /// What is left for more pods (never below zero).
    pub fn free(&self) -> f64 {
        (self.allocatable - self.requested).max(0.0)
    }

    /// The share requested, in percent (0 when nothing is allocatable).
    pub fn percent(&self) -> f64 {
        if self.allocatable > 0.0 { 100.0 * self.requested / self.allocatable } else { 0.0 }
    }
}

/// Whether a pod still holds its node's resources: it is bound and has not finished.
pub fn holds_resources(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The node a pod is bound to.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn request(container: &Container, resource: &str) -> f64 {
    let requests = container.resources.as_ref().and_then(|r| r.requests.as_ref());
    requests.and_then(|r| r.get(resource)).and_then(|q| parse_quantity(&q.0)).unwrap_or(0.0)
}

/// What a pod requests of `resource` (`cpu` in cores, `memory` in bytes) as the scheduler counts it: its
/// containers and sidecars (init containers that keep running) together, or its largest one-off init
/// container if that is more, plus the pod's overhead.
pub fn pod_request(pod: &Pod, resource: &str) -> f64 {
    let Some(spec) = &pod.spec else { return 0.0 };
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let is_sidecar = |c: &Container| c.restart_policy.as_deref() == Some("Always");
    let sidecars: f64 = init.iter().filter(|c| is_sidecar(c)).map(|c| request(c, resource)).sum();
    let running: f64 = spec.containers.iter().map(|c| request(c, resource)).sum::<f64>() + sidecars;
    let largest_init = init.iter().filter(|c| !is_sidecar(c)).map(|c| request(c, resource)).fold(0.0, f64::max);
    let overhead = spec.overhead.as_ref().and_then(|o| o.get(resource)).and_then(|q| parse_quantity(&q.0));
    running.max(largest_init) + overhead.unwrap_or(0.0)
}

/// A taint as `key=value:Effect` (or `key:Effect`).
pub fn taint_text(taint: &Taint) -> String {
    match taint.value.as_deref().filter(|v| !v.is_empty()) {
        Some(value) => format!("{}={value}:{}", taint.key, taint.effect),
        None => format!("{}:{}", taint.key, taint.effect),
    }
}

fn readiness(node: &Node) -> &'static str {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    match conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str()) {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    }
}

/// Summarizes `nodes` with the `pods` bound to them.
pub fn summarize(nodes: &[Node], pods: &[Pod]) -> Vec<NodeSummary> {
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| holds_resources(p)) {
        if let Some(node) = node_of(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    nodes.iter().map(|node| summary(node, by_node.get(node.metadata.name.as_deref().unwrap_or_default()))).collect()
}

fn summary(node: &Node, pods: Option<&Vec<&Pod>>) -> NodeSummary {
    let pods = pods.map(Vec::as_slice).unwrap_or_default();
    let schedulable = !node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let status = node.status.as_ref();
    let allocatable = |resource: &str| {
        let value = status.and_then(|s| s.allocatable.as_ref()).and_then(|a| a.get(resource));
        value.and_then(|q| parse_quantity(&q.0)).unwrap_or(0.0)
    };
    let usage = |resource: &str| Usage {
        requested: pods.iter().map(|p| pod_request(p, resource)).sum(),
        allocatable: allocatable(resource),
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let addresses = status.and_then(|s| s.addresses.as_deref()).unwrap_or_default();
    NodeSummary {
        name: node.metadata.name.clone().unwrap_or_default(),
        status: if schedulable {
            readiness(node).to_owned()
        } else {
            format!("{},SchedulingDisabled", readiness(node))
        },
        schedulable,
        roles: labels.keys().filter_map(|k| k.strip_prefix(ROLE_PREFIX)).map(str::to_owned).collect(),
        kubelet_version: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default(),
        internal_ip: addresses.iter().find(|a| a.type_ == "InternalIP").map(|a| a.address.clone()),
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .map(taint_text)
            .collect(),
        pods: pods.len(),
        pod_capacity: allocatable("pods") as u64,
        cpu: usage("cpu"),
        memory: usage("memory"),
    }
}

/// Every node (or those `selector` matches) and every pod bound to one, read in two lists.
pub async fn read_nodes_and_pods(client: &Client, selector: Option<&str>) -> Result<(Vec<Node>, Vec<Pod>), NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let nodes: ObjectList<Node> = nodes.list(&params).await.map_err(|e| NodeError::kube("listing nodes", e))?;
    let pods: Api<Pod> = Api::all(client.clone());
    let bound = ListParams::default().fields("spec.nodeName!=");
    let pods = pods.list(&bound).await.map_err(|e| NodeError::kube("listing pods", e))?;
    Ok((nodes.items, pods.items))
}

/// Every node (or those `selector` matches), summarized.
pub async fn list(client: &Client, selector: Option<&str>) -> Result<Vec<NodeSummary>, NodeError> {
    let (nodes, pods) = read_nodes_and_pods(client, selector).await?;
    Ok(summarize(&nodes, &pods))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str, phase: &str, containers: serde_json::Value, init: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": node, "containers": containers, "initContainers": init},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn container(cpu: &str, memory: &str) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}})
    }

    #[test]
    fn a_pod_requests_its_containers_and_sidecars_or_its_largest_init_container() {
        let plain = pod("n", "Running", json!([container("250m", "64Mi"), container("250m", "64Mi")]), json!([]));
        assert_eq!(pod_request(&plain, "cpu"), 0.5);
        assert_eq!(pod_request(&plain, "memory"), 128.0 * 1024.0 * 1024.0);
        let big_init = pod("n", "Running", json!([container("100m", "1Mi")]), json!([container("2", "1Mi")]));
        assert_eq!(pod_request(&big_init, "cpu"), 2.0);
        let mut sidecar = container("300m", "1Mi");
        sidecar["restartPolicy"] = json!("Always");
        let with_sidecar = pod("n", "Running", json!([container("100m", "1Mi")]), json!([sidecar]));
        assert!((pod_request(&with_sidecar, "cpu") - 0.4).abs() < 1e-9);
    }

    #[test]
    fn a_cordoned_node_shows_scheduling_disabled_with_its_roles_taints_and_usage() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "db", "effect": "NoExecute"},
            ]},
            "status": {
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.37.2", "architecture": "", "bootID": "", "containerRuntimeVersion": "",
                    "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "", "osImage": "", "systemUUID": ""},
            },
        }))
        .unwrap();
        let pods = [
            pod("n1", "Running", json!([container("500m", "1Gi")]), json!([])),
            pod("n1", "Succeeded", json!([container("1", "1Gi")]), json!([])),
            pod("n2", "Running", json!([container("1", "1Gi")]), json!([])),
        ];
        let [summary] = summarize(&[node], &pods).try_into().unwrap();
        assert_eq!(summary.status, "Ready,SchedulingDisabled");
        assert_eq!(summary.roles, ["control-plane"]);
        assert_eq!(summary.taints, ["node.kubernetes.io/unschedulable:NoSchedule", "dedicated=db:NoExecute"]);
        assert_eq!((summary.pods, summary.pod_capacity, summary.kubelet_version.as_str()), (1, 110, "v1.37.2"));
        assert_eq!(summary.cpu, Usage { requested: 0.5, allocatable: 2.0 });
        assert_eq!(summary.memory.percent(), 25.0);
    }
}
