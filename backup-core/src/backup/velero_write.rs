//! A Cairn backup written in Velero's bucket layout as well (`format: velero`): its gzip archive, log and
//! resource list copied to Velero's names, its results in Velero's shape, and `velero-backup.json` last and
//! create-only, so that a Velero server that syncs the bucket sees the backup only once it is whole and
//! never over one of its own. Cairn's own record still comes after, and decides the backup's existence.

use std::collections::BTreeMap;

use cairn_kube::report::Problem;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use super::{BackupRecord, BackupResults, Phase, velero};
use crate::{
    archive::FORMAT_VERSION,
    store::{BackupKeys, Store, StoreError},
};

/// Velero's results shape: messages of Velero itself, of cluster-scoped objects, and per namespace.
fn velero_messages(problems: &[Problem]) -> Value {
    let (mut general, mut cluster, mut namespaces) = (Vec::new(), Vec::new(), BTreeMap::<String, Vec<String>>::new());
    for problem in problems {
        match (&problem.namespace, &problem.resource) {
            (Some(ns), _) => namespaces.entry(ns.clone()).or_default().push(problem.to_string()),
            (None, Some(_)) => cluster.push(problem.to_string()),
            (None, None) => general.push(problem.to_string()),
        }
    }
    json!({"velero": general, "cluster": cluster, "namespaces": namespaces})
}

/// Velero's record of the backup: its spec (Velero's field names already), and a status in Velero's terms.
fn velero_record(record: &BackupRecord) -> Value {
    let status = &record.status;
    let phase = match status.phase {
        Phase::Completed => "Completed",
        Phase::PartiallyFailed => "PartiallyFailed",
        Phase::Failed => "Failed",
        Phase::InProgress => "InProgress",
    };
    let mut spec = serde_json::to_value(&record.spec).expect("specs serialize");
    spec["snapshotVolumes"] = json!(false);
    json!({
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {"name": record.name(), "labels": record.metadata.labels},
        "spec": spec,
        "status": {
            "version": 1,
            "formatVersion": FORMAT_VERSION,
            "phase": phase,
            "expiration": status.expiration,
            "startTimestamp": status.start_timestamp,
            "completionTimestamp": status.completion_timestamp,
            "progress": {"totalItems": status.progress.total_items, "itemsBackedUp": status.progress.items_backed_up},
            "warnings": status.warnings,
            "errors": status.errors,
        },
    })
}

/// Writes the Velero layout of `record`, whose Cairn files are at `keys`.
pub(super) async fn write(
    store: &Store,
    record: &BackupRecord,
    keys: &BackupKeys,
    results: &BackupResults,
) -> Result<(), StoreError> {
    let velero_keys = velero::keys(record.name());
    for (from, to) in [
        (&keys.archive, &velero_keys.archive),
        (&keys.log, &velero_keys.log),
        (&keys.resource_list, &velero_keys.resource_list),
    ] {
        store.objects().copy(from, to).await.map_err(|e| store.explain(to, e))?;
    }
    let velero_results =
        json!({"errors": velero_messages(&results.errors), "warnings": velero_messages(&results.warnings)});
    store.put_gzip_json(&velero_keys.results, &velero_results).await?;
    store.create_json(&velero_keys.record, &velero_record(record)).await
}
