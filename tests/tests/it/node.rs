//! The real node: a kubelet on containerd registers, runs pods from images imported without a registry, and
//! leaves nothing behind when it stops.

use std::time::Duration;

use cairn_tests::{TestEnv, oci::SHELL_IMAGE};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api,
    api::{LogParams, PostParams},
};
use serde_json::json;

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout` naming `what`.
async fn eventually<T, F: Future<Output = Option<T>>>(
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

#[tokio::test]
async fn a_pod_runs_on_the_real_node_from_an_imported_image_and_its_log_is_read_through_the_api_server() {
    let env = TestEnv::get();
    let node = env.node();
    let client = env.client().await;
    let namespace = env.namespace("real-node").await;
    let nodes: Api<Node> = Api::all(client.clone());
    let registered = nodes.get(&node.name).await.unwrap();
    let images = registered.status.and_then(|s| s.images).unwrap_or_default();
    assert!(
        images.iter().any(|i| i.names.iter().flatten().any(|n| n.contains("cairn.dev/test/shell"))),
        "the node reports its images: {images:?}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "hello"},
        "spec": {
            "nodeName": node.name,
            "containers": [{
                "name": "shell", "image": SHELL_IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", "echo hello from the node; sleep 3600"],
            }],
            "terminationGracePeriodSeconds": 0,
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually(Duration::from_secs(60), "the pod running", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("hello").await.ok()?;
            (pod.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
    let log = eventually(Duration::from_secs(30), "the pod's log", || {
        let pods = pods.clone();
        async move { pods.logs("hello", &LogParams::default()).await.ok().filter(|l| l.contains("hello")) }
    })
    .await;
    assert!(log.contains("hello from the node"), "{log}");
}
