//! Backups Velero wrote, seen as Cairn's: `backups/<name>/velero-backup.json` read into a [`BackupRecord`]
//! (marked by its format version `velero/<Velero's format version>`), Velero's file names for the archive,
//! log, results and resource list, and Velero's results read as Cairn's. Cairn reads Velero's backups and
//! never writes or deletes them: Velero keeps them.

use std::collections::BTreeMap;

use cairn_api::RecordMeta;
use cairn_kube::report::Problem;
use jiff::Timestamp;
use object_store::path::Path;
use serde::Deserialize;

use super::{BackupRecord, BackupResults, BackupSpec, BackupStatus, Phase, Progress};
use crate::store::{BackupKeys, Layout, StoreError};

/// The prefix of a Velero backup's format version in its record.
pub const VELERO_FORMAT: &str = "velero/";

#[derive(Debug, Deserialize)]
struct VeleroMeta {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "creationTimestamp")]
    created: Option<Timestamp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VeleroStatus {
    #[serde(default)]
    phase: String,
    #[serde(default)]
    format_version: String,
    #[serde(default)]
    version: Option<serde_json::Value>,
    #[serde(default)]
    start_timestamp: Option<Timestamp>,
    #[serde(default)]
    completion_timestamp: Option<Timestamp>,
    #[serde(default)]
    expiration: Option<Timestamp>,
    #[serde(default)]
    progress: Option<Progress>,
    #[serde(default)]
    warnings: u64,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    failure_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VeleroBackup {
    metadata: VeleroMeta,
    #[serde(default)]
    spec: BackupSpec,
    #[serde(default)]
    status: VeleroStatus,
}

/// Velero's phases in Cairn's: Completed and PartiallyFailed as they are, Failed and FailedValidation as
/// Failed, and every phase of a backup still being written (New, InProgress, WaitingForPluginOperations...,
/// Finalizing...) as InProgress.
fn phase_of(velero: &str) -> Phase {
    match velero {
        "Completed" => Phase::Completed,
        "PartiallyFailed" => Phase::PartiallyFailed,
        "Failed" | "FailedValidation" => Phase::Failed,
        _ => Phase::InProgress,
    }
}

/// Reads Velero's record of `name` into Cairn's record type.
pub(crate) fn record_of(name: &str, bytes: &[u8]) -> Result<BackupRecord, StoreError> {
    let key = Layout.velero_record(name).to_string();
    let backup: VeleroBackup = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { key: key.clone(), problem: format!("not a Velero backup record: {e}") })?;
    if backup.metadata.name != name {
        return Err(StoreError::Corrupt {
            key,
            problem: format!("it names backup {:?}, not {name:?} as its folder does", backup.metadata.name),
        });
    }
    let status = backup.status;
    let started = status.start_timestamp.or(backup.metadata.created).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut spec = backup.spec;
    spec.compression = Some(cairn_api::Compression::Gzip);
    Ok(BackupRecord {
        api_version: "velero.io/v1".to_owned(),
        kind: "Backup".to_owned(),
        metadata: RecordMeta { name: backup.metadata.name, labels: backup.metadata.labels },
        spec,
        status: BackupStatus {
            phase: phase_of(&status.phase),
            format_version: format!("{VELERO_FORMAT}{}", status.format_version),
            cairn_version: status.version.map(|v| format!("velero backup version {v}")).unwrap_or_default(),
            run: String::new(),
            start_timestamp: started,
            completion_timestamp: status.completion_timestamp,
            expiration: status.expiration.unwrap_or(Timestamp::MAX),
            progress: status.progress.unwrap_or_default(),
            warnings: status.warnings,
            errors: status.errors,
            failure_reason: status.failure_reason,
            archive: None,
        },
    })
}

impl BackupRecord {
    /// Whether Velero wrote this backup.
    pub fn is_velero(&self) -> bool {
        self.status.format_version.starts_with(VELERO_FORMAT)
    }
}

/// Velero's files of backup `name`: `<name>.tar.gz`, `<name>-logs.gz`, `<name>-results.gz`,
/// `<name>-resource-list.json.gz` (it has no manifest: the key named so is never written).
pub(crate) fn keys(name: &str) -> BackupKeys {
    let file = |suffix: &str| Path::from_iter(["backups", name, &format!("{name}{suffix}")]);
    BackupKeys::new(
        Layout.velero_record(name),
        Layout.velero_archive(name),
        file("-no-manifest"),
        file("-logs.gz"),
        file("-results.gz"),
        file("-resource-list.json.gz"),
    )
}

/// Velero's results file: messages by where they arose.
#[derive(Debug, Default, Deserialize)]
struct VeleroMessages {
    #[serde(default)]
    velero: Vec<String>,
    #[serde(default)]
    cluster: Vec<String>,
    #[serde(default)]
    namespaces: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct VeleroResults {
    #[serde(default)]
    errors: VeleroMessages,
    #[serde(default)]
    warnings: VeleroMessages,
}

fn problems(messages: VeleroMessages) -> Vec<Problem> {
    let mut all: Vec<Problem> = messages.velero.into_iter().chain(messages.cluster).map(Problem::general).collect();
    for (namespace, reasons) in messages.namespaces {
        all.extend(reasons.into_iter().map(|reason| Problem {
            resource: None,
            namespace: Some(namespace.clone()),
            name: None,
            reason,
        }));
    }
    all
}

/// Velero's results (gzip JSON) as Cairn's: its warnings and errors (Velero records no counts).
pub(crate) fn results_of(json: &[u8]) -> Result<BackupResults, serde_json::Error> {
    let results: VeleroResults = serde_json::from_slice(json)?;
    Ok(BackupResults { warnings: problems(results.warnings), errors: problems(results.errors), ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_velero_record_reads_as_a_marked_cairn_record() {
        let json = br#"{"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"nightly","namespace":"velero",
            "labels":{"velero.io/storage-location":"default"}},
            "spec":{"includedNamespaces":["shop"],"ttl":"720h0m0s","storageLocation":"default","snapshotVolumes":false},
            "status":{"version":1,"formatVersion":"1.1.0","expiration":"2026-12-31T00:00:00Z","phase":"Completed",
            "startTimestamp":"2026-12-01T00:00:00Z","completionTimestamp":"2026-12-01T00:01:00Z",
            "progress":{"totalItems":40,"itemsBackedUp":40},"warnings":2}}"#;
        let record = record_of("nightly", json).unwrap();
        assert!(record.is_velero());
        assert_eq!((record.status.phase, record.status.warnings), (Phase::Completed, 2));
        assert_eq!(record.status.progress.items_backed_up, 40);
        assert_eq!(record.spec.selection.included_namespaces, ["shop"]);
        assert!(record_of("other", json).is_err(), "a record naming another backup is damaged");
        let running = br#"{"metadata":{"name":"b"},"status":{"phase":"WaitingForPluginOperations"}}"#;
        assert_eq!(record_of("b", running).unwrap().status.phase, Phase::InProgress);
    }

    #[test]
    fn velero_results_read_as_problems() {
        let json =
            br#"{"errors":{"namespaces":{"shop":["error restoring x"]}},"warnings":{"velero":["slow"],"cluster":[]}}"#;
        let results = results_of(json).unwrap();
        assert_eq!(results.errors[0].namespace.as_deref(), Some("shop"));
        assert_eq!(results.warnings[0].reason, "slow");
    }
}
