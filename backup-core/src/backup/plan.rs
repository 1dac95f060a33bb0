//! The plan step of a backup, before the first byte is written: the request checked (name, TTL, a free name
//! in a reachable location), the cluster discovered, the selection compiled, the namespaces that exclude
//! themselves and the custom types found, and the list tasks to run, in the order a restore applies them.

use std::{collections::BTreeSet, time::Duration};

use crate::archive::order::{WAVES, wave_of};
use cairn_api::Compression;
use cairn_kube::{
    discovery::{Discovery, ResourceType},
    report::{Problem, RunLog},
    resources::{CRDS, NAMESPACES},
};
use jiff::Timestamp;
use kube::Client;

use super::{BackupError, BackupRequest, BackupResults, collect::list_filtered, validate_name};
use crate::{
    selection::{Selection, excluded_by_label},
    store::Store,
};

/// One LIST to run: a type across all namespaces, or in one.
#[derive(Debug, Clone)]
pub(super) struct ListTask {
    /// The type, at its preferred version.
    pub(super) resource_type: ResourceType,
    /// The namespace, when namespaces are listed one by one ([`BackupPlan::namespaces`]).
    pub(super) namespace: Option<String>,
    /// The restore wave of its type ([`wave_of`]; types never restored after the last wave).
    pub(super) wave: usize,
}

/// What a backup will do.
pub(super) struct BackupPlan {
    /// The backup's name.
    pub(super) name: String,
    /// Its lifetime.
    pub(super) ttl: Duration,
    /// The archive's compression.
    pub(super) compression: Compression,
    /// When it started.
    pub(super) started: Timestamp,
    /// The cluster's types.
    pub(super) discovery: Discovery,
    /// What is selected.
    pub(super) selection: Selection,
    /// Namespaces labelled to be left out, with everything in them.
    pub(super) excluded_namespaces: BTreeSet<String>,
    /// The namespaces whose objects are listed one by one: those named, or those the globs matched when
    /// the backup started; `None` lists each type once across the cluster.
    pub(super) namespaces: Option<Vec<String>>,
    /// Types a CRD defines (`plural.group`).
    pub(super) custom_types: BTreeSet<String>,
    /// The lists to run.
    pub(super) tasks: Vec<ListTask>,
    /// The spec's hook entries, compiled.
    pub(super) hook_entries: Vec<super::hooks::HookEntry>,
    /// Pods left out because a pre hook of theirs failed with `onError: Fail` (namespace, name).
    pub(super) left_out_pods: BTreeSet<(String, String)>,
    /// Warnings found while planning.
    pub(super) results: BackupResults,
    /// The run's log so far.
    pub(super) log: RunLog,
}

/// Plans the backup `request` into `store`. Nothing is written; an error means the backup never started.
pub(super) async fn plan(client: &Client, store: &Store, request: &BackupRequest) -> Result<BackupPlan, BackupError> {
    let name = request.name.clone();
    validate_name(&name)?;
    let ttl = super::retention::effective_ttl(&request.spec.ttl, cairn_api::DEFAULT_TTL)?;
    let velero = request.spec.format == Some(cairn_api::BackupFormat::Velero);
    let compression = match (request.spec.compression, velero) {
        (Some(Compression::Zstd), true) => {
            return Err(BackupError::Format(
                "format velero needs gzip compression (Velero reads tar.gz archives only): drop --compression zstd"
                    .into(),
            ));
        }
        (Some(compression), _) => compression,
        (None, true) => Compression::Gzip,
        (None, false) => Compression::Zstd,
    };
    store.check_reachable().await?;
    if super::read_backup(store, &name).await?.is_some() {
        return Err(BackupError::Exists { name, location: store.location().to_string() });
    }
    let mut log = RunLog::default();
    let started = Timestamp::now();
    log.info(format!("backup {name} starting into {}", store.location()));
    let discovery = Discovery::run(client).await?;
    let selection = Selection::compile(&request.spec.selection, &discovery)?;
    let hook_entries = super::hooks::compile(&request.spec.hooks, &discovery).map_err(BackupError::Hooks)?;
    let results = planning_warnings(&discovery, &selection, &mut log);
    let failed = |reason: String| BackupError::Failed { name: name.clone(), reason, recorded: false };
    let (excluded_namespaces, all_namespaces) = cluster_namespaces(client, &discovery).await.map_err(failed)?;
    let namespaces = namespaces_to_list(&selection, &all_namespaces, &mut log);
    let custom_types = custom_types(client, &discovery).await.map_err(failed)?;
    let (types, tasks) = list_tasks(&discovery, &selection, &excluded_namespaces, namespaces.as_deref());
    log.info(format!("{types} resource types selected, {} lists to run", tasks.len()));
    Ok(BackupPlan {
        name,
        ttl,
        compression,
        started,
        discovery,
        selection,
        excluded_namespaces,
        namespaces,
        custom_types,
        tasks,
        hook_entries,
        left_out_pods: BTreeSet::new(),
        results,
        log,
    })
}

/// Warnings known before anything is listed: API groups that could not be read, types that do not exist.
fn planning_warnings(discovery: &Discovery, selection: &Selection, log: &mut RunLog) -> BackupResults {
    let mut results = BackupResults::default();
    for warning in &discovery.warnings {
        let reason = format!(
            "API group {} could not be read; its types are not backed up: {}",
            warning.group_version, warning.reason
        );
        log.warn(&reason);
        results.warnings.push(Problem::general(reason));
    }
    for unknown in &selection.unknown_resources {
        let reason = "no such resource type on this server; ignored".to_owned();
        log.warn(format!("{unknown}: {reason}"));
        results.warnings.push(Problem { resource: Some(unknown.clone()), namespace: None, name: None, reason });
    }
    results
}

/// The cluster's namespaces as the backup starts: those carrying the exclude label (they take all their
/// objects out), and every name.
async fn cluster_namespaces(client: &Client, discovery: &Discovery) -> Result<(BTreeSet<String>, Vec<String>), String> {
    let Some(namespaces) = discovery.by_group_resource(NAMESPACES) else { return Ok(Default::default()) };
    let mut names = Vec::new();
    let labelled = list_filtered(client, namespaces, |n| {
        names.push(n.name.clone());
        excluded_by_label(&n.labels)
    })
    .await
    .map_err(|e| format!("listing namespaces failed: {e}"))?;
    Ok((labelled.into_iter().map(|n| n.name).collect(), names))
}

/// Which namespaces to list one by one: those named; or, for globs (`team-*`), the namespaces they match
/// now, unless those are more than half of the cluster's, when listing each type once across the cluster
/// and leaving out the rest reads less. Listing per namespace reads only the selected objects, at the cost
/// of one request per type and namespace.
fn namespaces_to_list(selection: &Selection, all: &[String], log: &mut RunLog) -> Option<Vec<String>> {
    if let Some(named) = selection.exact_namespaces() {
        return Some(named);
    }
    let matched = selection.matching_namespaces(all)?;
    let one_by_one = matched.len() * 2 <= all.len();
    log.info(format!(
        "the namespace patterns match {} of the cluster's {} namespaces; {}",
        matched.len(),
        all.len(),
        if one_by_one { "listed one by one" } else { "each type listed once across the cluster" }
    ));
    one_by_one.then_some(matched)
}

/// Custom resource types are exactly those a CRD defines; a CRD's name is its `plural.group`. Only the
/// names are kept: CRDs can be large.
async fn custom_types(client: &Client, discovery: &Discovery) -> Result<BTreeSet<String>, String> {
    let mut custom_types = BTreeSet::new();
    if let Some(crds) = discovery.by_group_resource(CRDS) {
        list_filtered(client, crds, |crd| {
            custom_types.insert(crd.name.clone());
            false
        })
        .await
        .map_err(|e| format!("listing CustomResourceDefinitions failed: {e}"))?;
    }
    Ok(custom_types)
}

/// Types that serve the same objects as another: (the one archived, the one left out when both are taken).
/// `events.events.k8s.io` are the core `events` seen through another group: archiving both stored every
/// event twice.
const SAME_OBJECTS: [(&str, &str); 1] = [("events", "events.events.k8s.io")];

/// The selected types, and one list task per type (or per type and namespace, when `namespaces` are listed
/// one by one), in restore waves ([`wave_of`]): CRDs, then namespaces, then Velero's high-priority
/// types one by one, then the rest, then webhooks, then what is never restored. The lists of one wave run
/// together and before the next wave's (`lists.rs`), so an archive read front to back meets objects in
/// the order a restore applies them.
fn list_tasks(
    discovery: &Discovery,
    selection: &Selection,
    excluded_namespaces: &BTreeSet<String>,
    namespaces: Option<&[String]>,
) -> (usize, Vec<ListTask>) {
    let mut types: Vec<&ResourceType> = discovery.types.iter().filter(|t| selection.includes_type(t)).collect();
    let taken: BTreeSet<String> = types.iter().map(|t| t.group_resource()).collect();
    types.retain(|t| {
        let group_resource = t.group_resource();
        !SAME_OBJECTS.iter().any(|(kept, twin)| group_resource == *twin && taken.contains(*kept))
    });
    types.sort_by_key(|t| wave_key(&t.group_resource()));
    let tasks = types
        .iter()
        .flat_map(|&resource_type| match (namespaces, resource_type.namespaced) {
            (Some(names), true) => names
                .iter()
                .filter(|ns| !excluded_namespaces.contains(*ns))
                .map(|ns| ListTask {
                    resource_type: resource_type.clone(),
                    namespace: Some(ns.clone()),
                    wave: wave_key(&resource_type.group_resource()),
                })
                .collect(),
            _ => vec![ListTask {
                resource_type: resource_type.clone(),
                namespace: None,
                wave: wave_key(&resource_type.group_resource()),
            }],
        })
        .collect();
    (types.len(), tasks)
}

/// A type's restore wave; types never restored come after every wave.
fn wave_key(group_resource: &str) -> usize {
    wave_of(group_resource).unwrap_or(WAVES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::SelectionSpec;

    fn resource_type(group: &str, resource: &str, kind: &str) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced: true,
            short_names: Vec::new(),
        }
    }

    #[test]
    fn events_are_archived_once_though_two_groups_serve_them() {
        let discovery = Discovery {
            types: vec![
                resource_type("", "events", "Event"),
                resource_type("events.k8s.io", "events", "Event"),
                resource_type("", "configmaps", "ConfigMap"),
            ],
            ..Default::default()
        };
        let listed = |spec: SelectionSpec| {
            let selection = Selection::compile(&spec, &discovery).unwrap();
            let (_, tasks) = list_tasks(&discovery, &selection, &BTreeSet::new(), None);
            tasks.iter().map(|t| t.resource_type.group_resource()).collect::<Vec<_>>()
        };
        assert_eq!(listed(SelectionSpec::default()), ["configmaps", "events"]);
        let only_new = SelectionSpec { included_resources: vec!["events.events.k8s.io".into()], ..Default::default() };
        assert_eq!(listed(only_new), ["events.events.k8s.io"]);
    }

    #[test]
    fn types_are_listed_in_the_order_a_restore_applies_them() {
        let discovery = Discovery {
            types: vec![
                resource_type("", "events", "Event"),
                resource_type("apps", "deployments", "Deployment"),
                resource_type("", "pods", "Pod"),
                resource_type("", "configmaps", "ConfigMap"),
                resource_type("", "secrets", "Secret"),
                resource_type("", "namespaces", "Namespace"),
                resource_type("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition"),
            ],
            ..Default::default()
        };
        let selection = Selection::compile(&SelectionSpec::default(), &discovery).unwrap();
        let (_, tasks) = list_tasks(&discovery, &selection, &BTreeSet::new(), None);
        let listed: Vec<String> = tasks.iter().map(|t| t.resource_type.group_resource()).collect();
        assert_eq!(
            listed,
            [CRDS, NAMESPACES, "secrets", "configmaps", "pods", "deployments.apps", "events"],
            "waves {:?}",
            tasks.iter().map(|t| t.wave).collect::<Vec<_>>()
        );
        assert!(tasks.windows(2).all(|w| w[0].wave <= w[1].wave));
    }
}
