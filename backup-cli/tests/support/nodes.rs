//! What the node tests share: simulated nodes kept to one test's pods, pod placement on them, the running
//! pods and their nodes, and waiting for a condition (`cairn_tests::wait::eventually`, re-exported).

use cairn_tests::kwok::FakeNode;
#[allow(unused_imports)] // Each test binary uses part of it.
pub(crate) use cairn_tests::wait::eventually;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};
use serde_json::{Value, json};

/// The taint and label that keep a test's simulated nodes to its own pods.
pub(crate) const GROUP: &str = "cairn.dev/test-group";

/// A simulated node of the test's group: only pods that tolerate the group's taint land there.
pub(crate) async fn group_node(client: &Client, group: &str, suffix: &str) -> String {
    let name = format!("{group}-{suffix}");
    FakeNode::new(&name).label(GROUP, group).taint(GROUP, group, "NoSchedule").create(client).await;
    name
}

/// A pod template's placement on the group's nodes.
pub(crate) fn placement(group: &str) -> Value {
    json!({"nodeSelector": {GROUP: group}, "tolerations": [{"key": GROUP, "operator": "Exists"}]})
}

/// Running pods of `namespace` whose name starts with `prefix`, with their nodes.
pub(crate) async fn running(client: &Client, namespace: &str, prefix: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods.list(&ListParams::default()).await.unwrap().items;
    listed
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| Some((p.metadata.name?, p.spec?.node_name?)))
        .filter(|(name, _)| name.starts_with(prefix))
        .collect()
}
