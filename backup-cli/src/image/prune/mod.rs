//! `cairn image prune`: a node's images removed when nothing needs them, and each image's verdict with its
//! reason (`--dry-run` shows them and removes nothing). On the node itself (where the runtime's socket is, as
//! crictl runs), or on other nodes through their image agents (`--node`, `--all-nodes`: an ImagePrune object
//! per node, carried out by `cairn image agent` there). The cluster says what it still names, the retained
//! backups what a restore would need ([`protected`]).

mod local;
mod protected;
mod remote;

pub(super) use remote::runtime_lists;

use anyhow::bail;
use cairn_api::{ImageVerdict, PruneRules};
use image_maintenance::prune::{Decision, Retention, Verdict};
use serde::Serialize;

use crate::{
    connect::Connection,
    output::{OutputFormat, human_bytes, table},
};

/// Flags of `cairn image prune`.
#[derive(Debug, clap::Args)]
pub(crate) struct PruneArgs {
    /// The container runtime's CRI socket on this machine (without --node or --all-nodes).
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    runtime_endpoint: String,
    /// Prune this node through its image agent (repeatable); see `cairn install --image-agent`.
    #[arg(long = "node", value_name = "NODE", conflicts_with = "all_nodes")]
    nodes: Vec<String>,
    /// Prune every node through its image agent (with --selector: the nodes it picks).
    #[arg(long)]
    all_nodes: bool,
    /// With --all-nodes: only the nodes whose labels match this selector.
    #[arg(short = 'l', long, requires = "all_nodes")]
    selector: Option<String>,
    /// With --node or --all-nodes: how long to wait for the agents (a Go duration).
    #[arg(long, default_value = "10m")]
    timeout: String,
    /// Show every image's verdict and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Never remove images with a name matching this pattern (`*` matches anything; repeatable), e.g.
    /// 'registry.example/base/*'.
    #[arg(long)]
    keep: Vec<String>,
    /// Remove only images built at least this long ago (a Go duration such as 720h); images whose build
    /// time the runtime does not give are kept.
    #[arg(long)]
    older_than: Option<String>,
    /// Keep the K most recently built images of each repository, used or not.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    keep_last: Option<u32>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

impl PruneArgs {
    /// The rules, checked: an empty pattern or an unreadable duration is refused naming the fix.
    fn rules(&self) -> anyhow::Result<PruneRules> {
        if self.keep.iter().any(String::is_empty) {
            bail!("--keep needs a pattern such as 'registry.example/base/*'");
        }
        if let Some(age) = &self.older_than {
            cairn_kube::duration::parse_duration(age)
                .map_err(|e| anyhow::anyhow!("invalid --older-than {age:?}: {e}; write a Go duration such as 720h"))?;
        }
        Ok(PruneRules {
            dry_run: self.dry_run,
            keep: self.keep.clone(),
            older_than: self.older_than.clone(),
            keep_last: self.keep_last,
        })
    }
}

/// The age and count rules of `rules`, measured from now.
pub(crate) fn retention(rules: &PruneRules) -> anyhow::Result<Retention> {
    let older_than = match &rules.older_than {
        Some(age) => {
            Some(cairn_kube::duration::parse_duration(age).map_err(|e| anyhow::anyhow!("olderThan {age:?}: {e}"))?)
        }
        None => None,
    };
    Ok(Retention { older_than, keep_last: rules.keep_last.map(|k| k as usize), now: Some(jiff::Timestamp::now()) })
}

/// `decision` as an ImagePrune's status and the reports show it.
pub(crate) fn verdict_of(decision: Decision) -> ImageVerdict {
    ImageVerdict {
        id: decision.id,
        names: decision.names,
        size_bytes: decision.size_bytes,
        verdict: match decision.verdict {
            Verdict::Remove => "remove",
            Verdict::Keep => "keep",
        }
        .to_owned(),
        reason: decision.reason,
        category: decision.category.to_owned(),
    }
}

/// One node's prune, as reported.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeReport {
    node: String,
    /// The ImagePrune's phase, or NoAgent.
    phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    removed: u32,
    kept: u32,
    bytes_freed: u64,
    images: Vec<ImageVerdict>,
}

/// What a prune reports: this machine's images, or each node's.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    dry_run: bool,
    removed: u32,
    kept: u32,
    bytes_freed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<Vec<ImageVerdict>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<Vec<NodeReport>>,
}

fn verdict_word(verdict: &str, dry_run: bool) -> &'static str {
    match (verdict, dry_run) {
        ("keep", _) => "keep",
        (_, true) => "would remove",
        (_, false) => "removed",
    }
}

/// The image rows: every image in a dry run, else only those removed (the rest are in `-o json`).
fn image_rows(rows: &mut Vec<Vec<String>>, node: Option<&str>, images: &[ImageVerdict], dry_run: bool) {
    for image in images.iter().filter(|i| dry_run || i.verdict == "remove") {
        let id: String = image.id.chars().take(19).collect();
        let mut row = vec![
            id,
            image.names.join(","),
            human_bytes(image.size_bytes),
            verdict_word(&image.verdict, dry_run).to_owned(),
            image.reason.clone(),
        ];
        if let Some(node) = node {
            row.insert(0, node.to_owned());
        }
        rows.push(row);
    }
}

fn report_text(report: &Report) -> String {
    let mut text = String::new();
    if let Some(images) = &report.images {
        let mut rows = vec![["IMAGE", "NAMES", "SIZE", "VERDICT", "REASON"].map(String::from).to_vec()];
        image_rows(&mut rows, None, images, true);
        text.push_str(&table(&rows));
    }
    if let Some(nodes) = &report.nodes {
        let mut rows = vec![["NODE", "IMAGE", "NAMES", "SIZE", "VERDICT", "REASON"].map(String::from).to_vec()];
        for node in nodes {
            image_rows(&mut rows, Some(&node.node), &node.images, report.dry_run);
        }
        if rows.len() > 1 {
            text.push_str(&table(&rows));
            text.push('\n');
        }
        let mut summary = vec![["NODE", "PHASE", "REMOVED", "KEPT", "FREED", "MESSAGE"].map(String::from).to_vec()];
        for node in nodes {
            summary.push(vec![
                node.node.clone(),
                node.phase.clone(),
                node.removed.to_string(),
                node.kept.to_string(),
                human_bytes(node.bytes_freed),
                node.message.clone().unwrap_or_default(),
            ]);
        }
        text.push_str(&table(&summary));
    }
    let verb = if report.dry_run { "would free" } else { "freed" };
    text.push_str(&format!(
        "\n{} image(s) removed{}, {} kept; {verb} {}\n",
        report.removed,
        if report.dry_run { " (dry run: none were)" } else { "" },
        report.kept,
        human_bytes(report.bytes_freed)
    ));
    text
}

/// Prunes this machine's runtime, or the nodes named, and prints the report; false when a node's prune
/// did not complete.
pub(super) async fn run(args: PruneArgs, client: &kube::Client, connection: &Connection) -> anyhow::Result<bool> {
    let rules = args.rules()?;
    let backups = protected::backup_images(connection).await?;
    let (report, complete) = if args.nodes.is_empty() && !args.all_nodes {
        (local::prune(&args.runtime_endpoint, client, rules, backups).await?, true)
    } else {
        let timeout = cairn_kube::duration::parse_duration(&args.timeout)
            .map_err(|e| anyhow::anyhow!("invalid --timeout {:?}: {e}", args.timeout))?;
        let nodes = remote::Nodes { named: args.nodes.clone(), selector: args.selector.clone() };
        remote::prune(client, &connection.namespace, nodes, rules, backups, timeout).await?
    };
    match args.output {
        OutputFormat::Table => crate::output::write_out(&report_text(&report))?,
        format => format.print(&report, |_| String::new())?,
    }
    Ok(complete)
}
