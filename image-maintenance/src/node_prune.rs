//! One node's prune, as `cairn image prune` on the node and the image agent both run it: the runtime's images
//! and the containers using them, what the cluster names (read fresh each time), then each image's verdict
//! ([`crate::prune::decide`]) and, unless a dry run, the removals, each checked just before it against the
//! containers running then.

use std::collections::BTreeMap;

use kube::Client;

use crate::{
    ImageError,
    cri::Runtime,
    prune::{Decision, Protections, Retention, Verdict, decide, named_images},
};

/// What one prune is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Decide only; remove nothing.
    pub dry_run: bool,
    /// Patterns of names never removed.
    pub keep: Vec<String>,
    /// Age and count rules.
    pub retention: Retention,
    /// Image references retained backups name, each with the backup.
    pub backups: BTreeMap<String, String>,
}

/// What a prune did, all images together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Images removed (would be, in a dry run).
    pub removed: usize,
    /// Images kept.
    pub kept: usize,
    /// Bytes the removed images held.
    pub bytes_freed: u64,
}

/// Sums `decisions` up.
pub fn totals(decisions: &[Decision]) -> Totals {
    let removed: Vec<&Decision> = decisions.iter().filter(|d| d.verdict == Verdict::Remove).collect();
    Totals {
        removed: removed.len(),
        kept: decisions.len() - removed.len(),
        bytes_freed: removed.iter().map(|d| d.size_bytes).sum(),
    }
}

/// Prunes the runtime's images as `request` says and returns every image's verdict.
pub async fn prune_node(runtime: &mut Runtime, client: &Client, request: Request) -> Result<Vec<Decision>, ImageError> {
    let images = runtime.images().await?;
    let in_use = runtime.images_in_use().await?;
    let protections = Protections {
        sandbox: runtime.sandbox_image().await?,
        named: named_images(client).await?,
        backups: request.backups,
        keep: request.keep,
        retention: request.retention,
    };
    let mut decisions = decide(&images, &in_use, &protections);
    if request.dry_run {
        return Ok(decisions);
    }
    for decision in decisions.iter_mut().filter(|d| d.verdict == Verdict::Remove) {
        let now_used = runtime.images_in_use().await?;
        if let Some(containers) = std::iter::once(&decision.id).chain(&decision.names).find_map(|k| now_used.get(k)) {
            decision.verdict = Verdict::Keep;
            decision.reason = format!("a container started using it during the prune ({})", containers.join(", "));
            decision.category = "startedDuringPrune";
            continue;
        }
        runtime.remove(&decision.id).await?;
    }
    Ok(decisions)
}
