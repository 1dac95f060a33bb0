//! What the node tests share: simulated nodes kept to one test's pods, pod placement on them, the running
//! pods and their nodes, and waiting for a condition.

use std::time::Duration;

use cairn_tests::kwok::FakeNode;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};
use serde_json::{Value, json};

/// The taint and label that keep a test's simulated nodes to its own pods.
pub(crate) const GROUP: &str = "cairn.dev/test-group";

pub(crate) async fn eventually<T, F: Future<Output = Option<T>>>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

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
