//! A prune of other nodes through their image agents: one ImagePrune per node (labelled with the node, so
//! that only its agent watches it), created only where the agent's Lease says it runs, then read until each
//! has finished or the timeout passes. On a terminal each node's end is told as it comes.

use std::{
    collections::BTreeMap,
    io::IsTerminal,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use cairn_api::{ImagePrune, PruneRules, RUN_LABEL, agent_lease_name, node_label_value};
use image_maintenance::inventory::RuntimeList;
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{ContainerImage, Node},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};

use super::{NodeReport, Report};
use crate::output::human_bytes;

/// How often the ImagePrunes are read while waiting.
const POLL: Duration = Duration::from_secs(2);

/// The nodes to prune: named, or every node (matching a selector).
#[derive(Debug, Clone)]
pub(super) struct Nodes {
    /// `--node` names; empty means every node.
    pub(super) named: Vec<String>,
    /// `--selector` with `--all-nodes`.
    pub(super) selector: Option<String>,
}

async fn resolve(client: &Client, nodes: &Nodes) -> anyhow::Result<Vec<String>> {
    let api: Api<Node> = Api::all(client.clone());
    if !nodes.named.is_empty() {
        for name in &nodes.named {
            if api.get_opt(name).await.with_context(|| format!("reading node {name}"))?.is_none() {
                bail!("node {name:?} not found: `cairn node list` shows the cluster's nodes");
            }
        }
        return Ok(nodes.named.clone());
    }
    let mut params = ListParams::default();
    if let Some(selector) = &nodes.selector {
        params = params.labels(selector);
    }
    let found: Vec<String> =
        api.list_metadata(&params).await.context("listing nodes")?.items.iter().map(|n| n.name_any()).collect();
    if found.is_empty() {
        bail!(
            "no node matches {}",
            nodes.selector.as_deref().map_or("(the cluster has none)".to_owned(), |s| format!("--selector {s}"))
        );
    }
    Ok(found)
}

async fn agent_runs(leases: &Api<Lease>, node: &str) -> anyhow::Result<bool> {
    let lease = leases.get_opt(&agent_lease_name(node)).await.context("reading the image agents' Leases")?;
    Ok(cairn_api::agent_runs(lease.as_ref(), jiff::Timestamp::now()))
}

fn request(node: &str, run: &str, rules: &PruneRules, backups: &BTreeMap<String, String>) -> ImagePrune {
    ImagePrune::for_node(node, &format!("prune-{}", node_label_value(node)), run, rules, backups)
}

fn no_agent(node: &str, namespace: &str) -> NodeReport {
    NodeReport {
        node: node.to_owned(),
        phase: "NoAgent".to_owned(),
        message: Some(format!(
            "no image agent runs on this node (its Lease {namespace}/{} is missing or expired): install agents with `cairn install --image-agent`, or run `cairn image agent --node-name {node}` on it",
            agent_lease_name(node)
        )),
        removed: 0,
        kept: 0,
        bytes_freed: 0,
        images: Vec::new(),
    }
}

fn report_of(prune: &ImagePrune, timed_out: Option<&str>) -> NodeReport {
    let status = prune.status.clone().unwrap_or_default();
    let message = match timed_out {
        Some(after) => Some(format!(
            "not finished after {after}; the agent goes on: `kubectl get imageprune {} -n {}` shows it",
            prune.name_any(),
            prune.namespace().unwrap_or_default()
        )),
        None => status.message,
    };
    NodeReport {
        node: prune.spec.node_name.clone(),
        phase: format!("{:?}", prune.phase()),
        message,
        removed: status.removed,
        kept: status.kept,
        bytes_freed: status.bytes_freed,
        images: status.images,
    }
}

/// Refuses a cluster that does not serve ImagePrunes, naming the fix.
async fn check_served(prunes: &Api<ImagePrune>, namespace: &str) -> anyhow::Result<bool> {
    match prunes.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(true),
        Err(error) if cairn_kube::errors::is_not_found(&error) => Ok(false),
        Err(error) => Err(anyhow::Error::new(error).context(format!("listing ImagePrunes in namespace {namespace}"))),
    }
}

/// Creates an ImagePrune for each of `names` whose agent runs and waits up to `timeout` for them: each node's
/// report (`NoAgent` where none runs), and the label value of the run.
async fn run_prunes(
    client: &Client,
    namespace: &str,
    names: &[String],
    rules: &PruneRules,
    backups: &BTreeMap<String, String>,
    timeout: Duration,
) -> anyhow::Result<(BTreeMap<String, NodeReport>, String)> {
    let prunes: Api<ImagePrune> = Api::namespaced(client.clone(), namespace);
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let run = format!("{:x}", jiff::Timestamp::now().as_nanosecond());
    let mut reports: BTreeMap<String, NodeReport> = BTreeMap::new();
    for node in names {
        if !agent_runs(&leases, node).await? {
            reports.insert(node.clone(), no_agent(node, namespace));
            continue;
        }
        prunes
            .create(&PostParams::default(), &request(node, &run, rules, backups))
            .await
            .with_context(|| format!("creating the ImagePrune for node {node} in namespace {namespace}"))?;
    }
    if reports.len() == names.len() {
        return Ok((reports, run));
    }
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let params = ListParams::default().labels(&format!("{RUN_LABEL}={run}"));
    loop {
        let listed = prunes.list(&params).await.context("reading the ImagePrunes")?.items;
        let timed_out = started.elapsed() >= timeout;
        for prune in &listed {
            let node = &prune.spec.node_name;
            if reports.contains_key(node) || !(prune.phase().is_final() || timed_out) {
                continue;
            }
            let after = timed_out.then(|| cairn_kube::duration::format_duration(timeout));
            let report = report_of(prune, after.as_deref());
            if terminal {
                eprintln!(
                    "node {node}: {} ({} removed, {} {})",
                    report.phase,
                    report.removed,
                    if rules.dry_run { "would free" } else { "freed" },
                    human_bytes(report.bytes_freed)
                );
            }
            reports.insert(node.clone(), report);
        }
        if reports.len() == names.len() || timed_out {
            return Ok((reports, run));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Creates an ImagePrune for each node whose agent runs and waits up to `timeout` for them; the report, and
/// whether every node's prune completed.
pub(super) async fn prune(
    client: &Client,
    namespace: &str,
    nodes: Nodes,
    rules: PruneRules,
    backups: BTreeMap<String, String>,
    timeout: Duration,
) -> anyhow::Result<(Report, bool)> {
    let names = resolve(client, &nodes).await?;
    let prunes: Api<ImagePrune> = Api::namespaced(client.clone(), namespace);
    if !check_served(&prunes, namespace).await? {
        bail!(
            "the cluster does not serve imageprunes.cairn.dev: install Cairn's CRDs and agents with `cairn install --image-agent`"
        );
    }
    let (reports, _) = run_prunes(client, namespace, &names, &rules, &backups, timeout).await?;
    if reports.values().all(|r| r.phase == "NoAgent") {
        let first = reports.values().next().and_then(|r| r.message.clone()).unwrap_or_default();
        bail!(
            "no node to prune has an image agent; {}: {first}",
            names.first().map(String::as_str).unwrap_or_default()
        );
    }
    let complete = reports.values().all(|r| r.phase == "Completed") && reports.len() == names.len();
    let nodes: Vec<NodeReport> = reports.into_values().collect();
    let report = Report {
        dry_run: rules.dry_run,
        removed: nodes.iter().map(|n| n.removed).sum(),
        kept: nodes.iter().map(|n| n.kept).sum(),
        bytes_freed: nodes.iter().map(|n| n.bytes_freed).sum(),
        images: None,
        nodes: Some(nodes),
    };
    Ok((report, complete))
}

/// The runtimes' own image lists of the nodes whose agents run (a dry-run ImagePrune each, deleted once
/// read), with what a prune would free; nodes without an agent are left out.
pub(crate) async fn runtime_lists(
    client: &Client,
    namespace: &str,
    node: Option<&str>,
    selector: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, RuntimeList>> {
    let prunes: Api<ImagePrune> = Api::namespaced(client.clone(), namespace);
    if !check_served(&prunes, namespace).await? {
        eprintln!(
            "note: the cluster does not serve imageprunes.cairn.dev, so no image agent can be asked: the nodes' status is used"
        );
        return Ok(BTreeMap::new());
    }
    let nodes = Nodes { named: node.into_iter().map(str::to_owned).collect(), selector: selector.map(str::to_owned) };
    let names = resolve(client, &nodes).await?;
    let rules = PruneRules { dry_run: true, ..PruneRules::default() };
    let (reports, run) = run_prunes(client, namespace, &names, &rules, &BTreeMap::new(), timeout).await?;
    prunes
        .delete_collection(&Default::default(), &ListParams::default().labels(&format!("{RUN_LABEL}={run}")))
        .await
        .context("deleting the dry-run ImagePrunes")?;
    let mut lists = BTreeMap::new();
    for (node, report) in reports.into_iter().filter(|(_, r)| r.phase == "Completed") {
        let images = report
            .images
            .iter()
            .map(|i| ContainerImage { names: Some(i.names.clone()), size_bytes: i64::try_from(i.size_bytes).ok() })
            .collect();
        lists.insert(node, RuntimeList { images, prunable_bytes: report.bytes_freed });
    }
    Ok(lists)
}
