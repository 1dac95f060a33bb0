//! ImagePrunePolicies: validate the schedule and rules; at each firing create one ImagePrune per selected node
//! whose image agent runs (owned by the policy, labelled with it and the run), carrying the images that the
//! retained backups of every storage location name; follow the run until each node's prune has ended (or
//! [`RUN_PATIENCE`] has passed), and sum it up into the status and the metrics; delete the ImagePrunes of
//! runs beyond the history limit. A run that has not finished makes the next firing wait, as a running backup
//! does for a Schedule.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use backup_core::{
    backup::retained_images,
    schedule::{Firing, History, Schedule, decide},
};
use cairn_api::{
    BackupStorageLocation, DEFAULT_PRUNE_HISTORY, ImagePrune, ImagePrunePolicy, NodePruneSummary, POLICY_LABEL,
    RUN_LABEL, agent_lease_name,
};
use cairn_kube::{duration::parse_duration, names::label_value};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Node},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    runtime::controller::Action,
};
use serde_json::json;

use super::{KubeContext, ReconcileError, patch_status};
use crate::{context::Context, locations};

/// How long a run may take before its unfinished nodes are given up on (and the next firing may start).
const RUN_PATIENCE: SignedDuration = SignedDuration::from_hours(1);
/// How often a running run is summed up again.
const FOLLOW_EVERY: Duration = Duration::from_secs(3);

/// Reconciles one ImagePrunePolicy.
pub(crate) async fn reconcile(object: Arc<ImagePrunePolicy>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<ImagePrunePolicy>();
    let name = object.name_any();
    let Some(object) = api.get_opt(&name).await.doing(|| format!("reading image prune policy {name}"))? else {
        return Ok(Action::await_change());
    };
    let uid = object.uid();
    let uid = uid.as_deref();
    let schedule = match validate(&object) {
        Ok(schedule) => schedule,
        Err(problem) => {
            let status = object.status.clone().unwrap_or_default();
            if status.phase.as_deref() != Some("FailedValidation") || status.message.as_deref() != Some(&problem) {
                tracing::warn!(policy = %name, "failed validation: {problem}");
                patch_status(&api, &name, uid, json!({ "phase": "FailedValidation", "message": problem })).await?;
            }
            return Ok(Action::await_change());
        }
    };
    let phase = if object.spec.paused { "Paused" } else { "Enabled" };
    let status = object.status.clone().unwrap_or_default();
    if status.phase.as_deref() != Some(phase) {
        patch_status(&api, &name, uid, json!({ "phase": phase, "message": null })).await?;
    }
    let now = Timestamp::now();
    let mut running = false;
    if let Some(started) = status.last_run_timestamp.as_ref().map(|t| t.0)
        && !status.last_run_finished
    {
        running = !follow_run(&context, &object, started, now).await?;
    }
    if object.spec.paused {
        return Ok(if running { Action::requeue(FOLLOW_EVERY) } else { Action::await_change() });
    }
    let history = History {
        created: object.creation_timestamp().map(|t| t.0).unwrap_or(now),
        last_backup: status.last_run_timestamp.map(|t| t.0),
        last_skipped: None,
        skip_immediately: false,
    };
    let next = match decide(&schedule, history, now, running) {
        Ok(Firing::Fire { next }) => {
            start_run(&context, &object, now).await?;
            running = true;
            next
        }
        Ok(Firing::Wait { next } | Firing::Skip { next }) => next,
        Err(error) => {
            patch_status(&api, &name, uid, json!({ "phase": "FailedValidation", "message": error.to_string() }))
                .await?;
            return Ok(Action::await_change());
        }
    };
    delete_old_runs(&context, &object).await?;
    let wait = Duration::try_from(next.duration_since(Timestamp::now()).max(SignedDuration::from_millis(200)))
        .unwrap_or(FOLLOW_EVERY);
    Ok(Action::requeue(if running { wait.min(FOLLOW_EVERY) } else { wait }))
}

/// The policy's schedule, or why it cannot run.
fn validate(object: &ImagePrunePolicy) -> Result<Schedule, String> {
    let schedule = object.spec.schedule.parse::<Schedule>().map_err(|e| e.to_string())?;
    if let Some(age) = &object.spec.rules.older_than {
        parse_duration(age).map_err(|e| format!("invalid olderThan {age:?}: {e}"))?;
    }
    if object.spec.rules.keep.iter().any(String::is_empty) {
        return Err("keep holds an empty pattern; write patterns such as 'registry.example/base/*'".to_owned());
    }
    Ok(schedule)
}

/// The run's label value: its start, to the second.
fn run_id(started: Timestamp) -> String {
    started.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn policy_selector(policy: &str) -> String {
    format!("{POLICY_LABEL}={}", label_value(policy))
}

/// The images retained backups name, from every storage location; a location that cannot be read stops the
/// run (pruning without it could remove what a restore of its backups needs).
async fn backup_images(context: &Context, now: Timestamp) -> Result<BTreeMap<String, String>, ReconcileError> {
    let locations = context
        .api::<BackupStorageLocation>()
        .list(&ListParams::default())
        .await
        .doing(|| "listing backup storage locations".to_owned())?;
    let mut named = BTreeMap::new();
    for object in locations.items {
        let location_name = object.name_any();
        let open = locations::open_object(context, object).await.map_err(|problem| {
            ReconcileError::Transient(format!(
                "cannot read location {location_name} to learn the images its backups need: {problem}"
            ))
        })?;
        let retained = retained_images(&open.store, now).await.map_err(|error| {
            ReconcileError::Transient(format!("reading the backups of location {location_name}: {error}"))
        })?;
        for (image, who) in retained.named {
            named.entry(image).or_insert(who);
        }
    }
    Ok(named)
}

/// Whether the node's image agent renewed its Lease within the Lease's duration.
async fn agent_runs(context: &Context, node: &str, now: Timestamp) -> Result<bool, ReconcileError> {
    let lease = context.api::<Lease>().get_opt(&agent_lease_name(node)).await.doing(|| "reading Leases".into())?;
    Ok(cairn_api::agent_runs(lease.as_ref(), now))
}

/// Creates the run's ImagePrunes and records its start.
async fn start_run(context: &Context, policy: &ImagePrunePolicy, now: Timestamp) -> Result<(), ReconcileError> {
    let name = policy.name_any();
    let backups = backup_images(context, now).await?;
    let nodes: Api<Node> = Api::all(context.client.clone());
    let params = ListParams::default().labels(&policy.spec.node_selector);
    let nodes = match nodes.list_metadata(&params).await {
        Ok(list) => list.items,
        Err(error) if cairn_kube::errors::ErrorKind::of(&error).may_pass_later() => {
            return Err(ReconcileError::Kube { action: "listing nodes".into(), error });
        }
        Err(error) => {
            let message =
                format!("nodeSelector {:?}: {}", policy.spec.node_selector, cairn_kube::errors::describe(&error));
            patch_status(
                &context.api::<ImagePrunePolicy>(),
                &name,
                None,
                json!({ "phase": "FailedValidation", "message": message }),
            )
            .await?;
            return Ok(());
        }
    };
    let run = run_id(now);
    let owner = policy.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();
    let mut summaries = Vec::new();
    for node in nodes.iter().map(|n| n.name_any()) {
        if !agent_runs(context, &node, now).await? {
            summaries.push(NodePruneSummary {
                node: node.clone(),
                phase: "NoAgent".into(),
                message: Some(format!(
                    "no image agent runs on the node (Lease {} missing or expired): install agents with `cairn install --image-agent`",
                    agent_lease_name(&node)
                )),
                ..NodePruneSummary::default()
            });
            continue;
        }
        let mut prune = ImagePrune::for_node(&node, &name, &run, &policy.spec.rules, &backups);
        prune.labels_mut().insert(POLICY_LABEL.to_owned(), label_value(&name));
        prune.metadata.owner_references = Some(owner.clone());
        let created = context
            .api::<ImagePrune>()
            .create(&PostParams::default(), &prune)
            .await
            .doing(|| format!("creating the ImagePrune for node {node}"))?;
        summaries.push(NodePruneSummary {
            node,
            image_prune: created.name_any(),
            phase: "New".into(),
            ..NodePruneSummary::default()
        });
    }
    tracing::info!(policy = %name, run = %run, nodes = summaries.len(), "image prune policy fired");
    let status = json!({
        "lastRunTimestamp": Time(now), "lastRunFinished": false, "lastBytesFreed": 0, "lastRemoved": 0,
        "lastKeptByReason": null, "nodes": summaries,
    });
    patch_status(&context.api::<ImagePrunePolicy>(), &name, policy.uid().as_deref(), status).await
}

/// One run summed up.
#[derive(Debug, Default, PartialEq)]
struct RunSummary {
    finished: bool,
    bytes_freed: u64,
    removed: u32,
    failed_nodes: u64,
    kept_by_reason: BTreeMap<String, u32>,
    nodes: Vec<NodePruneSummary>,
}

/// Sums up a run from its ImagePrunes and the nodes that had no agent when it started.
fn summarize(prunes: &[ImagePrune], no_agent: Vec<NodePruneSummary>, started: Timestamp, now: Timestamp) -> RunSummary {
    let given_up = now.duration_since(started) > RUN_PATIENCE;
    let mut summary = RunSummary { finished: true, failed_nodes: no_agent.len() as u64, ..RunSummary::default() };
    summary.nodes = no_agent;
    for prune in prunes {
        let status = prune.status.clone().unwrap_or_default();
        let phase = prune.phase();
        let mut message = status.message.clone();
        if !phase.is_final() {
            if given_up {
                message = Some("not finished within an hour: the node's agent may have stopped".to_owned());
                summary.failed_nodes += 1;
            } else {
                summary.finished = false;
            }
        } else if phase == cairn_api::PrunePhase::Failed {
            summary.failed_nodes += 1;
        }
        summary.bytes_freed += status.bytes_freed;
        summary.removed += status.removed;
        for image in status.images.iter().filter(|i| i.verdict == "keep") {
            *summary.kept_by_reason.entry(image.category.clone()).or_default() += 1;
        }
        summary.nodes.push(NodePruneSummary {
            node: prune.spec.node_name.clone(),
            image_prune: prune.name_any(),
            phase: format!("{phase:?}"),
            bytes_freed: status.bytes_freed,
            message,
        });
    }
    summary.nodes.sort_by(|a, b| a.node.cmp(&b.node));
    summary
}

/// Sums up the running run into the status (and the metrics once it has finished); whether it has.
async fn follow_run(
    context: &Context,
    policy: &ImagePrunePolicy,
    started: Timestamp,
    now: Timestamp,
) -> Result<bool, ReconcileError> {
    let name = policy.name_any();
    let selector = format!("{},{RUN_LABEL}={}", policy_selector(&name), run_id(started));
    let prunes = context
        .api::<ImagePrune>()
        .list(&ListParams::default().labels(&selector))
        .await
        .doing(|| format!("listing the ImagePrunes of policy {name}"))?
        .items;
    let no_agent: Vec<NodePruneSummary> = policy
        .status
        .as_ref()
        .map(|s| s.nodes.iter().filter(|n| n.phase == "NoAgent").cloned().collect())
        .unwrap_or_default();
    let summary = summarize(&prunes, no_agent, started, now);
    let status = json!({
        "lastRunFinished": summary.finished, "lastBytesFreed": summary.bytes_freed, "lastRemoved": summary.removed,
        "lastKeptByReason": summary.kept_by_reason, "nodes": summary.nodes,
    });
    patch_status(&context.api::<ImagePrunePolicy>(), &name, policy.uid().as_deref(), status).await?;
    if summary.finished {
        let dry_run = policy.spec.rules.dry_run;
        let (freed, removed) = if dry_run { (0, 0) } else { (summary.bytes_freed, u64::from(summary.removed)) };
        context.metrics.image_prune_finished(&name, freed, removed, summary.failed_nodes, &summary.kept_by_reason);
        tracing::info!(policy = %name, freed = summary.bytes_freed, removed = summary.removed, dry_run, "image prune run finished");
    }
    Ok(summary.finished)
}

/// Deletes the ImagePrunes of the policy's runs older than its newest `historyLimit`.
async fn delete_old_runs(context: &Context, policy: &ImagePrunePolicy) -> Result<(), ReconcileError> {
    let name = policy.name_any();
    let api = context.api::<ImagePrune>();
    let prunes = api
        .list_metadata(&ListParams::default().labels(&policy_selector(&name)))
        .await
        .doing(|| format!("listing the ImagePrunes of policy {name}"))?
        .items;
    let mut runs: Vec<String> = prunes.iter().filter_map(|p| p.labels().get(RUN_LABEL).cloned()).collect();
    runs.sort_unstable_by(|a, b| b.cmp(a));
    runs.dedup();
    let limit = policy.spec.history_limit.unwrap_or(DEFAULT_PRUNE_HISTORY) as usize;
    let kept = &runs[..runs.len().min(limit)];
    for prune in prunes.iter().filter(|p| p.labels().get(RUN_LABEL).is_none_or(|r| !kept.contains(r))) {
        match api.delete(&prune.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(error) if cairn_kube::errors::is_not_found(&error) => {}
            Err(error) => {
                return Err(ReconcileError::Kube {
                    action: format!("deleting ImagePrune {}", prune.name_any()),
                    error,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::{ImagePruneSpec, ImagePruneStatus, ImageVerdict, PrunePhase};

    fn prune(node: &str, phase: Option<PrunePhase>, freed: u64, kept: &[&str]) -> ImagePrune {
        let mut prune =
            ImagePrune::new(&format!("p-{node}"), ImagePruneSpec { node_name: node.into(), ..Default::default() });
        let images = kept
            .iter()
            .map(|c| ImageVerdict { verdict: "keep".into(), category: (*c).into(), ..ImageVerdict::default() })
            .collect();
        prune.status = Some(ImagePruneStatus { phase, bytes_freed: freed, removed: 1, images, ..Default::default() });
        prune
    }

    #[test]
    fn a_run_sums_its_nodes_and_finishes_when_every_prune_has_or_after_an_hour() {
        let started: Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
        let no_agent = vec![NodePruneSummary { node: "c".into(), phase: "NoAgent".into(), ..Default::default() }];
        let prunes = [
            prune("a", Some(PrunePhase::Completed), 100, &["inUse", "cluster", "inUse"]),
            prune("b", Some(PrunePhase::InProgress), 0, &[]),
        ];
        let soon = summarize(&prunes, no_agent.clone(), started, started + SignedDuration::from_mins(5));
        assert!(!soon.finished);
        assert_eq!((soon.bytes_freed, soon.removed, soon.failed_nodes), (100, 2, 1));
        assert_eq!(soon.kept_by_reason, BTreeMap::from([("cluster".into(), 1), ("inUse".into(), 2)]));
        let nodes: Vec<(&str, &str)> = soon.nodes.iter().map(|n| (n.node.as_str(), n.phase.as_str())).collect();
        assert_eq!(nodes, [("a", "Completed"), ("b", "InProgress"), ("c", "NoAgent")]);

        let late = summarize(&prunes, no_agent, started, started + SignedDuration::from_hours(2));
        assert!(late.finished);
        assert_eq!(late.failed_nodes, 2);
        assert!(late.nodes[1].message.as_deref().unwrap().contains("not finished within an hour"));
    }
}
