//! The real node: a kubelet on containerd registers, runs pods from images imported without a registry, and
//! leaves nothing behind when it stops.

use cairn_tests::wait::eventually;
use std::time::Duration;

use cairn_tests::{TestEnv, kwok::FakeNode, oci::SHELL_IMAGE};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api,
    api::{LogParams, PostParams},
};
use serde_json::json;

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
    // The pod reaches the API server as the `kubernetes` Service, and the S3 server at the gateway.
    let s3 = env.info().s3_endpoint_for_pods(&node);
    let (s3_host, s3_port) = s3.trim_start_matches("http://").split_once(':').unwrap();
    let reach = format!(
        "echo hello from the node; \
         if echo | busybox timeout 5 busybox nc $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT; then \
           echo reached the API server; fi; \
         (printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | busybox timeout 5 busybox nc {s3_host} {s3_port} | busybox head -1; \
         sleep 3600"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "hello"},
        "spec": {
            "nodeName": node.name,
            "containers": [{
                "name": "shell", "image": SHELL_IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", reach],
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
        async move { pods.logs("hello", &LogParams::default()).await.ok().filter(|l| l.contains("HTTP/")) }
    })
    .await;
    assert!(log.contains("hello from the node"), "{log}");
    assert!(log.contains("reached the API server"), "{log}");
    assert!(log.contains("HTTP/1.0 403"), "the S3 server answers (refusing an unsigned request): {log}");
}

#[tokio::test]
async fn simulated_nodes_run_scheduled_pods_and_evictions_honour_disruption_budgets() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("kwok").await;
    let names = [env.unique_name("kwok-a"), env.unique_name("kwok-b")];
    for name in &names {
        FakeNode::new(name.as_str())
            .label("cairn.dev/test-pool", &namespace)
            .image(&["registry.example/app:1"], 1 << 20)
            .create(&client)
            .await;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let images = nodes.get(&names[0]).await.unwrap().status.and_then(|s| s.images).unwrap_or_default();
    assert!(images.iter().any(|i| i.names.iter().flatten().any(|n| n == "registry.example/app:1")), "{images:?}");
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{cairn.dev/test-pool: {namespace}}}
      containers: [{{name: web, image: "registry.example/app:1"}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web, namespace: {namespace}}}
spec:
  minAvailable: 3
  selector: {{matchLabels: {{app: web}}}}
"#
    );
    cairn_tests::apply::apply_manifests(&client, &manifest).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let running = eventually(Duration::from_secs(60), "three pods running on the simulated nodes", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&Default::default()).await.ok()?.items;
            let running: Vec<Pod> = list
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            (running.len() == 3).then_some(running)
        }
    })
    .await;
    assert!(running.iter().all(|p| names.contains(p.spec.as_ref().unwrap().node_name.as_ref().unwrap())));
    // The budget allows no disruption: the eviction is refused with 429.
    let victim = running[0].metadata.name.clone().unwrap();
    let refused = pods.evict(&victim, &Default::default()).await.unwrap_err();
    assert!(matches!(&refused, kube::Error::Api(s) if s.code == 429), "{refused}");
}

#[test]
fn a_stopped_node_leaves_no_process_mount_cgroup_bridge_address_or_rule_behind() {
    let env = TestEnv::get();
    let config = env.info().node_config().unwrap();
    let node = cairn_tests::node::RealNode::start(&config).unwrap();
    let footprint = node.footprint.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = env.client().await;
        let namespace = env.namespace("node-cleanup").await;
        let pods: Api<Pod> = Api::namespaced(client, &namespace);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "busy"},
            "spec": {
                "nodeName": node.name,
                "containers": [{"name": "shell", "image": SHELL_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
            },
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        eventually(Duration::from_secs(60), "the pod running", || {
            let pods = pods.clone();
            async move { (pods.get("busy").await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(()) }
        })
        .await;
    });
    let running = footprint.traces();
    assert!(running.processes >= 4 && running.mounts > 0 && running.cgroups > 0, "{running:?}");
    assert_eq!((running.bridges, running.addresses), (1, 1), "{running:?}");
    assert_eq!(running.iptables_rules, 4, "the pod network's rules: {running:?}");
    drop(node);
    let clean = cairn_tests::node::HostTraces::default();
    // The node's reaper notices the stop within a second and ends.
    let mut after = footprint.traces();
    for _ in 0..30 {
        if after == clean {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = footprint.traces();
    }
    assert_eq!(after, clean, "left behind by the stopped node");
}

#[test]
fn a_killed_environment_process_leaves_no_node_behind() {
    // An environment with a node in a process of its own (`cairn-testenv up --node`), then that process
    // killed as a crashed or cancelled test run would be: no destructor runs, the node's reaper cleans up.
    let env = TestEnv::get();
    let state = env.info().state_dir.join(env.unique_name("killed-env"));
    let up = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-testenv"))
        .args(["up", "--node", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let info = cairn_tests::EnvInfo::read(&state).unwrap();
    let footprint = info.node.expect("the environment runs a node").footprint;
    let running = footprint.traces();
    assert!(running.processes >= 2 && running.iptables_rules == 4 && running.bridges == 1, "{running:?}");
    let serve = std::fs::read_to_string(state.join("serve.pid")).unwrap();
    assert!(std::process::Command::new("kill").args(["-9", serve.trim()]).status().unwrap().success());
    let mut after = footprint.traces();
    for _ in 0..100 {
        if after == cairn_tests::node::HostTraces::default() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = footprint.traces();
    }
    assert_eq!(after, cairn_tests::node::HostTraces::default(), "left behind by the killed environment's node");
}
