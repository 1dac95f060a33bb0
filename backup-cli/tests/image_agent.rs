//! The image agent in the cluster: `cairn install --image-agent` runs `cairn image agent` on the test
//! environment's real node, from Cairn's image built as the release builds it (`backup-server` and `cairn`),
//! talking CRI to the node's containerd through the mounted socket; the agent renews its Lease and carries
//! out a dry-run ImagePrune, keeping the pause image and removing nothing.

use std::{process::Command, time::Duration};

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use backup_core::install::{IMAGE_AGENT_NAME, cluster_role_name, image_agent_cluster_role_name};
use cairn_api::{ImagePrune, ImagePruneSpec, NODE_LABEL, PrunePhase, PruneRules, agent_lease_name, node_label_value};
use cairn_tests::{
    NodeInfo, TestEnv,
    node::REAL_NODE_TAINT,
    oci::{self, PAUSE_IMAGE},
    wait::eventually,
};
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Namespace, Pod},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, LogParams, PostParams},
};
use support::{cairn, server_binary, succeeded};

/// Cairn's image with the CLI beside the server, as the node knows it after [`node`].
const CAIRN_IMAGE: &str = "cairn.dev/test/cairn:dev";
/// How old the agent's Lease may be (it renews it every 10 s), and how long the test waits for it.
const LEASE_FRESHNESS: Duration = Duration::from_secs(60);
/// How long a dry-run prune of the node may take.
const PRUNE_TIMEOUT: Duration = Duration::from_secs(120);
/// Container states that mean the agent will not start without a change.
const STUCK: [&str; 6] = [
    "CrashLoopBackOff",
    "Error",
    "CreateContainerError",
    "CreateContainerConfigError",
    "ErrImagePull",
    "ImagePullBackOff",
];

/// The real node, with Cairn's image (the built `backup-server` and `cairn`) imported.
fn node(env: &TestEnv) -> NodeInfo {
    let node = env.node();
    let work = env.info().state_dir.join("images");
    std::fs::create_dir_all(&work).unwrap();
    let image = oci::cairn_image(CAIRN_IMAGE, &server_binary(), env!("CARGO_BIN_EXE_cairn").as_ref()).unwrap();
    oci::import(&image, &node.runtime_socket, &work).unwrap();
    node
}

/// The image agent's pod on `node` once it runs; panics at once, with its last log lines, when it cannot
/// start.
async fn agent_pod_running(client: &Client, namespace: &str, node: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let outcome = eventually(Duration::from_secs(180), "the image agent's pod running on the real node", || {
        let pods = pods.clone();
        async move {
            let selector = "app.kubernetes.io/component=image-agent";
            let listed = pods.list(&ListParams::default().labels(selector)).await.ok()?.items;
            let pod =
                listed.into_iter().find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))?;
            let name = pod.metadata.name.clone()?;
            let status = pod.status.as_ref()?;
            if status.phase.as_deref() == Some("Running")
                && status
                    .container_statuses
                    .iter()
                    .flatten()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            {
                return Some(Ok(name));
            }
            let stuck = status.container_statuses.iter().flatten().find_map(|c| {
                let state = c.state.as_ref()?;
                let reason = state.waiting.as_ref().and_then(|w| w.reason.clone());
                let reason = reason.or_else(|| state.terminated.as_ref().and_then(|t| t.reason.clone()))?;
                STUCK.contains(&reason.as_str()).then_some(reason)
            })?;
            let lines = agent_logs(client, namespace, &name).await;
            Some(Err(format!(
                "the image agent's pod {namespace}/{name} cannot start ({stuck}); its last log lines:\n{lines}"
            )))
        }
    })
    .await;
    outcome.unwrap_or_else(|problem| panic!("{problem}"))
}

/// The agent pod's last log lines (its previous run's when it has restarted).
async fn agent_logs(client: &Client, namespace: &str, pod: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let previous = pods.get(pod).await.is_ok_and(|p| has_restarted(&p));
    let params = LogParams { tail_lines: Some(30), previous, ..LogParams::default() };
    pods.logs(pod, &params).await.unwrap_or_else(|e| format!("(no logs: {e})"))
}

/// Awaits `wait` (an [`eventually`]); when it panics, panics again with the agent's last log lines, which say
/// why it did not do what was waited for.
async fn with_agent_logs<T>(client: &Client, namespace: &str, pod: &str, wait: impl Future<Output = T>) -> T {
    match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(wait)).await {
        Ok(value) => value,
        Err(panic) => {
            let problem = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            let logs = agent_logs(client, namespace, pod).await;
            panic!("{problem}; the image agent's pod {namespace}/{pod} logged:\n{logs}")
        }
    }
}

/// Whether the pod's container has restarted: its previous run's logs say why it stopped.
fn has_restarted(pod: &Pod) -> bool {
    pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).any(|c| c.restart_count > 0)
}

/// The images the node's runtime holds, by name (`ctr images ls -q`).
fn runtime_images(node: &NodeInfo) -> Vec<String> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(&node.runtime_socket)
        .args(["--namespace", "k8s.io", "images", "ls", "-q"])
        .output()
        .expect("ctr runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

/// Deletes the installation's namespace and its cluster-scoped objects (the server's and the agent's).
async fn uninstall(client: &Client, namespace: &str) {
    let gone = |result: Result<_, kube::Error>, what: &str| match result {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => panic!("deleting {what}: {error}"),
    };
    let params = DeleteParams::default();
    gone(Api::<Namespace>::all(client.clone()).delete(namespace, &params).await.map(|_| ()), namespace);
    for name in [cluster_role_name(namespace), image_agent_cluster_role_name(namespace)] {
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        gone(bindings.delete(&name, &params).await.map(|_| ()), &name);
        let roles: Api<ClusterRole> = Api::all(client.clone());
        gone(roles.delete(&name, &params).await.map(|_| ()), &name);
    }
}

#[tokio::test]
async fn the_image_agent_runs_on_the_real_node_renews_its_lease_and_carries_out_a_dry_run_prune() {
    let env = TestEnv::get();
    let node = node(&env);
    let client = env.client().await;
    let namespace = env.unique_name("image-agent");
    let socket = node.runtime_socket.display().to_string();
    // The server's pod goes to the real node too (the only one that runs pods); the agent's DaemonSet
    // tolerates every taint by itself.
    let (toleration, selector) =
        (format!("{REAL_NODE_TAINT}=real:NoSchedule"), format!("kubernetes.io/hostname={}", node.name));
    let installed = succeeded(cairn(
        &env,
        &namespace,
        &[
            "install",
            "--image",
            CAIRN_IMAGE,
            "--no-default-backup-location",
            "--image-agent",
            "--image-agent-runtime-socket",
            &socket,
            "--tolerations",
            &toleration,
            "--node-selector",
            &selector,
            "--wait",
        ],
    ));
    assert!(installed.contains(&format!("DaemonSet {namespace}/{IMAGE_AGENT_NAME} applied")), "{installed}");

    let pod = agent_pod_running(&client, &namespace, &node.name).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let lease = agent_lease_name(&node.name);
    let what = format!("Lease {namespace}/{lease} renewed");
    let renewed = eventually(LEASE_FRESHNESS, &what, || {
        let (leases, lease) = (leases.clone(), lease.clone());
        async move {
            let renewed = leases.get_opt(&lease).await.ok()??.spec?.renew_time?;
            let age = jiff::Timestamp::now().duration_since(renewed.0).unsigned_abs();
            (age < LEASE_FRESHNESS).then_some(())
        }
    });
    with_agent_logs(&client, &namespace, &pod, renewed).await;

    let before = runtime_images(&node);
    let prunes: Api<ImagePrune> = Api::namespaced(client.clone(), &namespace);
    let mut prune = ImagePrune::new(
        "dry-run",
        ImagePruneSpec {
            node_name: node.name.clone(),
            rules: PruneRules { dry_run: true, ..PruneRules::default() },
            ..ImagePruneSpec::default()
        },
    );
    prune.metadata.labels = Some([(NODE_LABEL.to_owned(), node_label_value(&node.name))].into());
    prunes.create(&PostParams::default(), &prune).await.unwrap();
    let done = eventually(PRUNE_TIMEOUT, "ImagePrune dry-run finished", || {
        let prunes = prunes.clone();
        async move { prunes.get("dry-run").await.ok().filter(|p| p.phase().is_final()) }
    });
    let done = with_agent_logs(&client, &namespace, &pod, done).await;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(done.phase(), PrunePhase::Completed, "{status:?}");
    assert!(!status.images.is_empty(), "no image verdicts: {status:?}");
    let pause = status
        .images
        .iter()
        .find(|image| image.names.iter().any(|name| name == PAUSE_IMAGE))
        .unwrap_or_else(|| panic!("{PAUSE_IMAGE} has no verdict: {status:?}"));
    assert_eq!((pause.verdict.as_str(), pause.reason.as_str()), ("keep", "the runtime's sandbox (pause) image"));
    let agent_image = status.images.iter().find(|image| image.names.iter().any(|name| name == CAIRN_IMAGE));
    assert_eq!(agent_image.map(|i| i.verdict.as_str()), Some("keep"), "the agent's own image: {status:?}");
    // A dry run removes nothing, even what it would remove.
    let after = runtime_images(&node);
    for name in &before {
        assert!(after.contains(name), "the dry run removed {name}");
    }

    uninstall(&client, &namespace).await;
}
