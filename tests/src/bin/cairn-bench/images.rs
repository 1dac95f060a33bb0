//! The image inventory benchmark: many nodes reporting many images each (Node objects with `status.images`,
//! as kubelets write them), inventoried by `cairn image list -o json` against the floor of listing the same
//! nodes and pods with one client.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::bail;
use cairn_tests::{TestEnv, measure::run_measured};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

/// Requests in flight while nodes are created.
const CREATE_CONCURRENCY: usize = 16;

/// The images node `n` reports: shared ones (every node holds the first half) and its own, of realistic sizes
/// and names (a tag and a digest each).
fn images_of(n: usize, count: usize) -> serde_json::Value {
    let images: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let (repository, key) = if i < count / 2 {
                (format!("registry.example/shared/app-{i:03}"), format!("s{i:03}"))
            } else {
                (format!("registry.example/node-{n:03}/app-{i:03}"), format!("n{n:03}i{i:03}"))
            };
            let digest = format!("sha256:{:0>64}", key.bytes().map(|b| format!("{b:02x}")).collect::<String>());
            json!({
                "names": [format!("{repository}@{}", &digest[..71]), format!("{repository}:v1.{i}.0-20261201")],
                "sizeBytes": 5_000_000 + (i as i64) * 731_000,
            })
        })
        .collect();
    json!(images)
}

/// Creates `nodes` Node objects reporting `images` images each.
async fn create_nodes(client: &Client, prefix: &str, nodes: usize, images: usize) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    stream::iter(0..nodes)
        .map(|n| {
            let api = api.clone();
            async move {
                let name = format!("{prefix}-{n:03}");
                let node: Node =
                    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"cairn.dev/bench": prefix}}}))?;
                api.create(&PostParams::default(), &node).await?;
                let status = json!({"status": {"images": images_of(n, images)}});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The floor: the nodes and the bound pods listed with one client, as the inventory reads them.
async fn floor(client: &Client, selector: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes.list(&ListParams::default().labels(selector)).await?;
    let pods: Api<Pod> = Api::all(client.clone());
    pods.list(&ListParams::default().fields("spec.nodeName!=")).await?;
    let elapsed = started.elapsed();
    drop(listed);
    Ok(elapsed)
}

/// The benchmark: prints the floor, cairn's time, their ratio and cairn's peak memory.
pub(crate) async fn image_bench(nodes: usize, images: usize, cairn: &Path) -> anyhow::Result<()> {
    if !cairn.is_file() {
        bail!("{} not found: build it first with `cargo build --release -p backup-cli`", cairn.display());
    }
    let env = TestEnv::get();
    let client = env.client().await;
    let prefix = env.unique_name("imgbench");
    println!(
        "image inventory benchmark: {nodes} nodes x {images} images, Kubernetes {}, {} cores",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?
    );
    let started = Instant::now();
    create_nodes(&client, &prefix, nodes, images).await?;
    eprintln!("  ({nodes} nodes created in {:.1} s)", started.elapsed().as_secs_f64());
    let selector = format!("cairn.dev/bench={prefix}");
    println!("{:>4} {:>10} {:>10} {:>8} {:>10} {:>12}", "run", "floor", "cairn", "ratio", "peak RSS", "images seen");
    for run in 1..=3 {
        let floor = floor(&client, &selector).await?;
        let mut command = Command::new(cairn);
        command.args(["image", "list", "-l", &selector, "-o", "json"]).env("KUBECONFIG", &env.info().kubeconfig);
        let (wall, rss_kib, _, output) = run_measured(command)?;
        if !output.status.success() {
            bail!("cairn image list failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        println!(
            "{run:>4} {:>9.2}s {:>9.2}s {:>8.2} {:>8.1}MiB {:>12}",
            floor.as_secs_f64(),
            wall.as_secs_f64(),
            wall.as_secs_f64() / floor.as_secs_f64(),
            rss_kib as f64 / 1024.0,
            report["totalImages"]
        );
    }
    println!(
        "(floor: the same nodes and bound pods listed with one client in this process; cairn: a separate process)"
    );
    Ok(())
}
