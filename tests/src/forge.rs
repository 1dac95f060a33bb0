//! Backups written by hand, as a hostile or broken writer of the bucket would: Velero's layout with any
//! entries (paths are not checked), and Cairn backups whose record and manifest agree with an archive of
//! any content, so only the content can give them away.

use cairn_api::API_VERSION;
use cairn_api::Compression;
use cairn_api::RecordMeta;
use std::{collections::BTreeMap, io::Write};

use backup_core::{
    archive::{ArchiveWriter, FORMAT_VERSION},
    backup::{BackupRecord, BackupSpec, BackupStatus, Phase, Progress, create_record},
    store::{Layout, Store},
};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// The run id of forged backups.
const FORGED_RUN: &str = "20260101000000-f0f0";

/// Writes a backup in Velero's bucket layout: `velero-backup.json` and `<name>.tar.gz` holding the format
/// `version` and the given raw entries, paths taken as given.
pub async fn velero_backup_raw(store: &Store, name: &str, version: &str, entries: &[(&str, Vec<u8>)]) {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut add = |path: &str, content: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        let bytes = path.as_bytes();
        if bytes.len() > 100 {
            // Long paths go in a GNU long-name entry, as Cairn's own writer does.
            tar.append_data(&mut header, path, content).unwrap();
            return;
        }
        // Bypass the tar crate's path checks, as a hostile or broken writer would.
        header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        header.set_cksum();
        tar.append(&header, content).unwrap();
    };
    add("metadata/version", version.as_bytes());
    for (path, content) in entries {
        add(path, content);
    }
    let mut gz = tar.into_inner().unwrap();
    gz.flush().unwrap();
    let archive = gz.finish().unwrap();
    let meta = json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name}, "status": {"phase": "Completed", "formatVersion": "1.1.0"}});
    store.overwrite(&Layout.velero_record(name), serde_json::to_vec(&meta).unwrap().into()).await.unwrap();
    store.overwrite(&Layout.velero_archive(name), archive.into()).await.unwrap();
}

/// [`velero_backup_raw`] with JSON objects.
pub async fn velero_backup(store: &Store, name: &str, version: &str, entries: &[(&str, Value)]) {
    let raw: Vec<(&str, Vec<u8>)> = entries.iter().map(|(p, o)| (*p, serde_json::to_vec(o).unwrap())).collect();
    velero_backup_raw(store, name, version, &raw).await
}

/// One object of a forged Cairn backup: where its path puts it, and what it holds.
pub struct Forged<'a> {
    /// `configmaps`, `rolebindings.rbac.authorization.k8s.io`.
    pub group_resource: &'a str,
    /// The namespace its path names.
    pub namespace: Option<&'a str>,
    /// The name its path names.
    pub name: &'a str,
    /// Its content.
    pub content: Vec<u8>,
}

/// Writes a Completed Cairn backup whose record and manifest agree with an archive of the given objects,
/// whatever they hold: what someone able to write the bucket can make.
pub async fn cairn_backup(store: &Store, name: &str, objects: &[Forged<'_>]) -> BackupRecord {
    let mut writer = ArchiveWriter::new(Vec::new(), Vec::new(), Compression::Zstd, 0).unwrap();
    for object in objects {
        writer.add_object(object.group_resource, "v1", object.namespace, object.name, &object.content).unwrap();
    }
    let (archive, manifest, summary) = writer.finish().unwrap();
    let keys = Layout.backup_keys(name, FORGED_RUN, Compression::Zstd);
    store.overwrite(&keys.archive, archive.into()).await.unwrap();
    store.overwrite(&keys.manifest, manifest.into()).await.unwrap();
    let now = Timestamp::now();
    let record = BackupRecord {
        api_version: API_VERSION.into(),
        kind: "Backup".into(),
        metadata: RecordMeta { name: name.into(), labels: BTreeMap::new() },
        spec: BackupSpec { ttl: "1h0m0s".into(), compression: Some(Compression::Zstd), ..Default::default() },
        status: BackupStatus {
            phase: Phase::Completed,
            format_version: FORMAT_VERSION.into(),
            cairn_version: backup_core::VERSION.into(),
            run: FORGED_RUN.into(),
            start_timestamp: now,
            completion_timestamp: Some(now),
            expiration: now + SignedDuration::from_hours(1),
            progress: Progress { total_items: objects.len() as u64, items_backed_up: objects.len() as u64 },
            warnings: 0,
            errors: 0,
            failure_reason: None,
            archive: Some(summary),
        },
    };
    create_record(store, &record).await.unwrap();
    record
}
