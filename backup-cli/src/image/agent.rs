//! `cairn image agent`: a node's image agent. It carries out the ImagePrunes labelled with its node (created
//! by `cairn image prune --node/--all-nodes` and the server's ImagePrunePolicies) against the node's runtime
//! over CRI, writing each image's verdict into the object's status, and renews the Lease
//! `image-agent-<node>` so that requesters know it runs. A prune found InProgress (the agent stopped during
//! it) is carried out again: a prune decides afresh each time, so repeating one removes nothing more.

use std::time::Duration;

use anyhow::Context;
use cairn_api::{ImagePrune, ImagePruneStatus, NODE_LABEL, PrunePhase, agent_lease_name, node_label_value};
use futures::StreamExt;
use image_maintenance::{
    cri::Runtime,
    node_prune::{Request, prune_node, totals},
};
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Node},
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;

use super::prune::{retention, verdict_of};

/// How often the agent renews its Lease, and how long the Lease says it holds.
const RENEW_EVERY: Duration = Duration::from_secs(10);
const LEASE_SECONDS: i32 = 30;
/// The field manager of what the agent writes.
const MANAGER: &str = "cairn-image-agent";

/// Flags of `cairn image agent`.
#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// This node's name as the cluster knows it (in a DaemonSet, from the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The container runtime's CRI socket on this node.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    runtime_endpoint: String,
}

fn log(line: &str) {
    eprintln!("{} {line}", jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"));
}

/// Renews the node's agent Lease every [`RENEW_EVERY`] for as long as the agent runs.
async fn renew_lease(leases: Api<Lease>, node: String) {
    let name = agent_lease_name(&node);
    loop {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "labels": {NODE_LABEL: node_label_value(&node)}},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": MicroTime(jiff::Timestamp::now())},
        });
        if let Err(error) = leases.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&lease)).await {
            log(&format!("renewing Lease {name} failed (requesters will think this agent is gone): {error}"));
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
}

async fn write_status(api: &Api<ImagePrune>, name: &str, status: &ImagePruneStatus) -> anyhow::Result<()> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .with_context(|| format!("writing the status of ImagePrune {name}"))?;
    Ok(())
}

/// Carries out one ImagePrune and records how it ended.
async fn carry_out(
    api: &Api<ImagePrune>,
    runtime: &mut Runtime,
    client: &Client,
    prune: &ImagePrune,
) -> anyhow::Result<()> {
    let name = prune.name_any();
    let resumed = prune.phase() == PrunePhase::InProgress;
    let mut status = ImagePruneStatus {
        phase: Some(PrunePhase::InProgress),
        start_timestamp: Some(Time(jiff::Timestamp::now())),
        message: resumed.then(|| "carried out again: the agent stopped during the first attempt".to_owned()),
        ..ImagePruneStatus::default()
    };
    write_status(api, &name, &status).await?;
    let rules = &prune.spec.rules;
    let outcome = match retention(rules) {
        Ok(retention) => {
            let request = Request {
                dry_run: rules.dry_run,
                keep: rules.keep.clone(),
                retention,
                backups: prune.spec.protected_images.clone(),
            };
            prune_node(runtime, client, request).await.map_err(anyhow::Error::from)
        }
        Err(error) => Err(error),
    };
    status.completion_timestamp = Some(Time(jiff::Timestamp::now()));
    match outcome {
        Ok(decisions) => {
            let totals = totals(&decisions);
            status.phase = Some(PrunePhase::Completed);
            (status.removed, status.kept, status.bytes_freed) =
                (totals.removed as u32, totals.kept as u32, totals.bytes_freed);
            status.images = decisions.into_iter().map(verdict_of).collect();
            log(&format!(
                "ImagePrune {name}: Completed{}, {} removed, {} kept, {} bytes freed",
                if rules.dry_run { " (dry run)" } else { "" },
                status.removed,
                status.kept,
                status.bytes_freed
            ));
        }
        Err(error) => {
            status.phase = Some(PrunePhase::Failed);
            status.message = Some(format!("{error:#}"));
            log(&format!("ImagePrune {name}: Failed: {error:#}"));
        }
    }
    write_status(api, &name, &status).await
}

/// Runs the agent until it is stopped; returns only on a setup failure.
pub(super) async fn run(args: AgentArgs, client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let node = args.node_name;
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(&node).await.context("reading this agent's node")?.is_none() {
        anyhow::bail!("node {node:?} not found: --node-name (or NODE_NAME) must be this node's name in the cluster");
    }
    let mut runtime = Runtime::connect(&args.runtime_endpoint).await?;
    runtime.images().await?;
    tokio::spawn(renew_lease(Api::namespaced(client.clone(), namespace), node.clone()));
    let api: Api<ImagePrune> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels(&format!("{NODE_LABEL}={}", node_label_value(&node)));
    log(&format!(
        "image agent of node {node} (runtime {}) takes ImagePrunes in namespace {namespace}",
        args.runtime_endpoint
    ));
    let mut prunes = std::pin::pin!(watcher(api.clone(), config).default_backoff().applied_objects());
    while let Some(event) = prunes.next().await {
        let prune = match event {
            Ok(prune) => prune,
            Err(error) => {
                log(&format!("watching ImagePrunes: {error} (retrying)"));
                continue;
            }
        };
        if prune.spec.node_name != node || prune.phase().is_final() || prune.metadata.deletion_timestamp.is_some() {
            continue;
        }
        // The watch also delivers this agent's own status writes, late: decide on a fresh read.
        let prune = match api.get_opt(&prune.name_any()).await {
            Ok(Some(fresh)) if !fresh.phase().is_final() && fresh.metadata.deletion_timestamp.is_none() => fresh,
            Ok(_) => continue,
            Err(error) => {
                log(&format!("reading ImagePrune {}: {error}", prune.name_any()));
                continue;
            }
        };
        if let Err(error) = carry_out(&api, &mut runtime, client, &prune).await {
            log(&format!("ImagePrune {}: {error:#}", prune.name_any()));
        }
    }
    Ok(false)
}
