//! A prune of this machine's runtime, over its CRI socket.

use std::collections::BTreeMap;

use cairn_api::PruneRules;
use image_maintenance::{
    cri::Runtime,
    node_prune::{Request, prune_node, totals},
};

use super::{Report, retention, verdict_of};

/// Prunes the runtime at `endpoint` as `rules` say, keeping what `backups` name.
pub(super) async fn prune(
    endpoint: &str,
    client: &kube::Client,
    rules: PruneRules,
    backups: BTreeMap<String, String>,
) -> anyhow::Result<Report> {
    let mut runtime = Runtime::connect(endpoint).await?;
    let request = Request { dry_run: rules.dry_run, retention: retention(&rules)?, keep: rules.keep, backups };
    let decisions = prune_node(&mut runtime, client, request).await?;
    let totals = totals(&decisions);
    Ok(Report {
        dry_run: rules.dry_run,
        removed: totals.removed as u32,
        kept: totals.kept as u32,
        bytes_freed: totals.bytes_freed,
        images: Some(decisions.into_iter().map(verdict_of).collect()),
        nodes: None,
    })
}
