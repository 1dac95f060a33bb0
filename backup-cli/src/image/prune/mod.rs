//! `cairn image prune`: on a node, the images of its container runtime removed when nothing needs them, and
//! each image's verdict with its reason (`--dry-run` shows them and removes nothing). Run where the runtime's
//! socket is (on the node, as crictl is); the cluster says what it still names, and the retained backups of
//! the storage location (standalone: `--storage`, else the embedded default) what a restore would need.

use std::collections::BTreeMap;

use anyhow::bail;
use backup_core::backup;
use image_maintenance::{
    cri::Runtime,
    prune::{Decision, Protections, Verdict, decide, named_images},
    reference::ImageRef,
};
use kube::Client;
use serde::Serialize;

use crate::{
    connect::{Connection, Mode},
    output::{OutputFormat, human_bytes, table, write_out},
};

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

/// The images retained backups name (Completed or PartiallyFailed, not expired), as the runtime spells them,
/// each with the backup; standalone, from the storage location. With a server the backups live in its
/// locations, which are not read here: that is said, and nothing is added.
async fn backup_images(connection: &Connection) -> anyhow::Result<BTreeMap<String, String>> {
    let mut named = BTreeMap::new();
    if let Mode::Server(_) = connection.mode().await? {
        eprintln!(
            "note: images named only by backups in the server's storage locations are not checked; pass --storage URL to check a location's backups"
        );
        return Ok(named);
    }
    let store = connection.existing_store()?;
    let now = jiff::Timestamp::now();
    let mut unrecorded = Vec::new();
    for record in backup::list_backups(&store).await?.records {
        let retained = matches!(record.status.phase, backup::Phase::Completed | backup::Phase::PartiallyFailed)
            && record.status.expiration > now;
        if !retained {
            continue;
        }
        let results = backup::read_results(&store, &record).await?;
        if results.images.is_empty() && results.counts.keys().any(|k| k == "pods" || k.ends_with(".apps")) {
            unrecorded.push(record.name().to_owned());
        }
        for image in &results.images {
            let who = format!("backup {} (kept until {})", record.name(), record.status.expiration);
            for name in ImageRef::parse(image).map(|r| r.runtime_names()).unwrap_or_else(|_| vec![image.clone()]) {
                named.entry(name).or_insert_with(|| who.clone());
            }
        }
    }
    if !unrecorded.is_empty() {
        eprintln!(
            "note: backup(s) {} were made before Cairn recorded images: the images they name are not known",
            unrecorded.join(", ")
        );
    }
    Ok(named)
}

/// Decides every image's verdict, then (unless --dry-run) removes those nothing needs, checking again
/// just before each removal that no container has started using it meanwhile.
pub(super) async fn run(args: PruneArgs, client: &Client, connection: &Connection) -> anyhow::Result<bool> {
    for pattern in &args.keep {
        if pattern.is_empty() {
            bail!("--keep needs a pattern such as 'registry.example/base/*'");
        }
    }
    let mut runtime = Runtime::connect(&args.runtime_endpoint).await?;
    let images = runtime.images().await?;
    let in_use = runtime.images_in_use().await?;
    let mut named = named_images(client).await?;
    for (name, who) in backup_images(connection).await? {
        named.entry(name).or_insert(who);
    }
    let protections = Protections { sandbox: runtime.sandbox_image().await?, named, keep: args.keep.clone() };
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
