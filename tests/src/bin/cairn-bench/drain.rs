//! The drain benchmark: simulated nodes (KWOK) each running the same number of pods, drained by `kubectl
//! drain` one node after the other (the baseline) and by `cairn node drain` at several concurrencies, each
//! variant on nodes and pods of its own in the same environment.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use cairn_tests::{TestEnv, kwok::FakeNode};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

/// The label that keeps a variant's pods to its own nodes.
const GROUP: &str = "cairn.dev/bench-group";

/// Nodes and pods of one variant, ready to drain.
struct Round {
    namespace: String,
    drained: Vec<String>,
    spares: Vec<String>,
    pods: usize,
}

/// Creates `nodes` nodes with `per_node` pods each (a Deployment per node that prefers it), cordons them so
/// that evicted pods go to the spare nodes created next (enough for every pod), and waits until every pod
/// runs.
async fn prepare(env: &TestEnv, client: &Client, tag: &str, nodes: usize, per_node: usize) -> anyhow::Result<Round> {
    let group = env.unique_name(tag);
    let namespace = env.namespace(tag).await;
    let mut drained = Vec::new();
    for i in 0..nodes {
        let name = format!("{group}-d{i:02}");
        FakeNode::new(&name).label(GROUP, &group).create(client).await;
        drained.push(name);
    }
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &namespace);
    for (i, node) in drained.iter().enumerate() {
        let app = format!("app-{i:02}");
        let deployment = serde_json::from_value(json!({
            "metadata": {"name": app},
            "spec": {
                "replicas": per_node,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {
                        "nodeSelector": {GROUP: group},
                        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                        }]}},
                        "containers": [{"name": "app", "image": "registry.invalid/app:1"}]
                    }
                }
            }
        }))?;
        deployments.create(&PostParams::default(), &deployment).await?;
    }
    let want = nodes * per_node;
    wait_running(client, &namespace, want, |pod_node| drained.iter().any(|d| d == pod_node)).await?;
    let nodes_api: Api<Node> = Api::all(client.clone());
    for node in &drained {
        nodes_api.patch(node, &PatchParams::default(), &Patch::Merge(json!({"spec": {"unschedulable": true}}))).await?;
    }
    let mut spares = Vec::new();
    for i in 0..want.div_ceil(100) + 1 {
        let name = format!("{group}-spare{i:02}");
        FakeNode::new(&name).label(GROUP, &group).create(client).await;
        spares.push(name);
    }
    Ok(Round { namespace, drained, spares, pods: want })
}

/// Waits until `want` pods of `namespace` run on nodes `on` accepts.
async fn wait_running(client: &Client, namespace: &str, want: usize, on: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let listed = pods.list(&ListParams::default()).await?.items;
        let running = listed
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(&on))
            .count();
        if running >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {running} of {want} pods ran in namespace {namespace} within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Removes a round's namespace and nodes, so that the next variant has the machine to itself.
async fn clean(client: &Client, round: &Round) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&round.namespace, &DeleteParams::default()).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    for node in round.drained.iter().chain(&round.spares) {
        nodes.delete(node, &DeleteParams::default()).await?;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(())
}

/// Runs `command` to success, discarding its output; its wall time.
fn timed(mut command: Command, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command.stdout(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| what.to_owned())?;
    if !output.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(started.elapsed())
}

/// The benchmark: prints one line per variant with its time, pods moved per second, and its ratio to
/// kubectl's sequential drains.
pub(crate) async fn drain_bench(
    nodes: usize,
    per_node: usize,
    concurrencies: Vec<usize>,
    cairn: &Path,
    kubectl: &Path,
) -> anyhow::Result<()> {
    for (binary, build) in [(cairn, "cargo build --release -p backup-cli"), (kubectl, "bash tests/bench.sh drain")] {
        if !binary.is_file() {
            bail!("{} not found: build it first with `{build}`", binary.display());
        }
    }
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let kubeconfig = &env.info().kubeconfig;
    println!(
        "drain benchmark: {nodes} simulated nodes x {per_node} pods, Kubernetes {}, {} cores",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?
    );
    println!("{:<22} {:>6} {:>9} {:>8} {:>12}", "variant", "pods", "time", "pods/s", "vs kubectl");
    let round = prepare(&env, &client, "kubectl", nodes, per_node).await?;
    let started = Instant::now();
    for node in &round.drained {
        let mut command = Command::new(kubectl);
        command.args(["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=10m"]);
        command.env("KUBECONFIG", kubeconfig);
        timed(command, &format!("kubectl drain {node}"))?;
    }
    let baseline = started.elapsed();
    println!(
        "{:<22} {:>6} {:>8.1}s {:>8.1} {:>12}",
        "kubectl, one by one",
        round.pods,
        baseline.as_secs_f64(),
        round.pods as f64 / baseline.as_secs_f64(),
        "1.00"
    );
    clean(&client, &round).await?;
    for concurrency in concurrencies {
        let round = prepare(&env, &client, &format!("cairn-c{concurrency}"), nodes, per_node).await?;
        let mut command = Command::new(cairn);
        command.args(["node", "drain", "--ignore-daemonsets", "--timeout", "10m", "--concurrency"]);
        command.arg(concurrency.to_string()).args(&round.drained).env("KUBECONFIG", kubeconfig);
        let wall = timed(command, "cairn node drain")?;
        println!(
            "{:<22} {:>6} {:>8.1}s {:>8.1} {:>11.2}x",
            format!("cairn --concurrency {concurrency}"),
            round.pods,
            wall.as_secs_f64(),
            round.pods as f64 / wall.as_secs_f64(),
            baseline.as_secs_f64() / wall.as_secs_f64()
        );
        clean(&client, &round).await?;
    }
    println!("(vs kubectl: kubectl's time divided by the variant's; above 1 is faster)");
    Ok(())
}
