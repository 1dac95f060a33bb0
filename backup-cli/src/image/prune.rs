//! `cairn image prune`: on a node, the images of its container runtime removed when nothing needs them, and
//! each image's verdict with its reason (`--dry-run` shows them and removes nothing). Run where the runtime's
//! socket is (on the node, as crictl is); the cluster says what it still names.

use std::collections::BTreeMap;

use anyhow::bail;
use image_maintenance::{
    cri::Runtime,
    prune::{Decision, Protections, Verdict, decide, named_images},
};
use kube::Client;
use serde::Serialize;

use crate::output::{OutputFormat, human_bytes, table, write_out};

/// Flags of `cairn image prune`.
#[derive(Debug, clap::Args)]
pub(crate) struct PruneArgs {
    /// The container runtime's CRI socket on this machine.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    runtime_endpoint: String,
    /// Show every image's verdict and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Never remove images with a name matching this pattern (`*` matches anything; repeatable), e.g.
    /// 'registry.example/base/*'.
    #[arg(long)]
    keep: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// What a prune reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    dry_run: bool,
    images: Vec<Decision>,
    removed: usize,
    bytes_freed: u64,
    kept: usize,
}

fn report_text(report: &Report) -> String {
    let mut rows = vec![["IMAGE", "NAMES", "SIZE", "VERDICT", "REASON"].map(String::from).to_vec()];
    for d in &report.images {
        let verdict = match (d.verdict, report.dry_run) {
            (Verdict::Keep, _) => "keep",
            (Verdict::Remove, true) => "would remove",
            (Verdict::Remove, false) => "removed",
        };
        let id: String = d.id.chars().take(19).collect();
        rows.push(vec![id, d.names.join(","), human_bytes(d.size_bytes), verdict.to_owned(), d.reason.clone()]);
    }
    let verb = if report.dry_run { "would free" } else { "freed" };
    format!(
        "{}\n{} image(s) removed{}, {} kept; {verb} {}\n",
        table(&rows),
        report.removed,
        if report.dry_run { " (dry run: none were)" } else { "" },
        report.kept,
        human_bytes(report.bytes_freed)
    )
}

/// Decides every image's verdict, then (unless --dry-run) removes those nothing needs, checking again
/// just before each removal that no container has started using it meanwhile.
pub(super) async fn run(args: PruneArgs, client: &Client) -> anyhow::Result<bool> {
    for pattern in &args.keep {
        if pattern.is_empty() {
            bail!("--keep needs a pattern such as 'registry.example/base/*'");
        }
    }
    let mut runtime = Runtime::connect(&args.runtime_endpoint).await?;
    let images = runtime.images().await?;
    let in_use = runtime.images_in_use().await?;
    let protections = Protections {
        sandbox: runtime.sandbox_image().await?,
        named: named_images(client).await?,
        keep: args.keep.clone(),
    };
    let mut decisions = decide(&images, &in_use, &protections);
    if !args.dry_run {
        for decision in decisions.iter_mut().filter(|d| d.verdict == Verdict::Remove) {
            let now_used: BTreeMap<String, Vec<String>> = runtime.images_in_use().await?;
            if let Some(containers) = now_used.get(&decision.id) {
                decision.verdict = Verdict::Keep;
                decision.reason = format!("a container started using it during the prune ({})", containers.join(", "));
                continue;
            }
            runtime.remove(&decision.id).await?;
        }
    }
    let removed: Vec<&Decision> = decisions.iter().filter(|d| d.verdict == Verdict::Remove).collect();
    let report = Report {
        dry_run: args.dry_run,
        removed: removed.len(),
        bytes_freed: removed.iter().map(|d| d.size_bytes).sum(),
        kept: decisions.len() - removed.len(),
        images: decisions,
    };
    match args.output {
        OutputFormat::Table => write_out(&report_text(&report))?,
        format => format.print(&report, |_| String::new())?,
    }
    Ok(true)
}
