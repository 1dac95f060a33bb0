//! Where a restore reads from: a Cairn backup (checked against its manifest before anything is applied) or
//! a backup Velero wrote (`velero-backup.json` + `<name>.tar.gz`). Archives are read as streams, one pass
//! per wave, so memory does not grow with the backup.

use std::{collections::HashSet, io::Read};

use flate2::read::GzDecoder;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::RestoreError;
use crate::{
    archive::{FORMAT_VERSION, ManifestEntry, VERSION_PATH, path_is_safe},
    backup::{BackupRecord, Phase, backup_keys, verify_backup},
    store::{Compression, Layout, Store},
};

/// An archived object, known from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// `deployments.apps`.
    pub group_resource: String,
    /// Its namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its path in the archive.
    pub path: String,
}

/// Reads `resources/<gr>/namespaces/<ns>/<name>.json` or `resources/<gr>/cluster/<name>.json`; other
/// entries (the version file, preferred-version copies) give `None`.
pub fn parse_item_path(path: &str) -> Option<IndexEntry> {
    let rest = path.strip_prefix("resources/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (group_resource, namespace, file) = match parts.as_slice() {
        [gr, "namespaces", ns, file] => (*gr, Some((*ns).to_owned()), *file),
        [gr, "cluster", file] => (*gr, None, *file),
        _ => return None,
    };
    let name = file.strip_suffix(".json")?;
    Some(IndexEntry {
        group_resource: group_resource.to_owned(),
        namespace,
        name: name.to_owned(),
        path: path.to_owned(),
    })
}

fn check_format_version(version: &str) -> Result<(), RestoreError> {
    let major = version.trim().split('.').next().unwrap_or_default();
    let supported = FORMAT_VERSION.split('.').next().unwrap_or_default();
    if major == supported { Ok(()) } else { Err(RestoreError::FormatVersion { version: version.trim().to_owned() }) }
}

/// Which tool wrote the backup.
#[derive(Debug, Clone)]
pub enum SourceFormat {
    /// Cairn, with its record.
    Cairn(Box<BackupRecord>),
    /// Velero.
    Velero,
}

/// An opened backup to restore from.
#[derive(Debug, Clone)]
pub struct BackupSource {
    /// The backup's name.
    pub name: String,
    /// Who wrote it.
    pub format: SourceFormat,
    store: Store,
    archive: object_store::path::Path,
    compression: Compression,
}

impl BackupSource {
    /// Opens backup `name` in `store`: Cairn's record first, else Velero's.
    pub async fn open(store: &Store, name: &str) -> Result<BackupSource, RestoreError> {
        if let Some(record) = crate::backup::read_backup(store, name).await? {
            if record.status.phase == Phase::Failed || record.status.archive.is_none() {
                return Err(RestoreError::NotRestorable {
                    name: name.to_owned(),
                    reason: format!(
                        "it is {}{}",
                        record.status.phase.as_str(),
                        record.status.failure_reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                });
            }
            check_format_version(&record.status.format_version)?;
            let keys = backup_keys(&record);
            return Ok(BackupSource {
                name: name.to_owned(),
                compression: record.compression(),
                archive: keys.archive,
                format: SourceFormat::Cairn(Box::new(record)),
                store: store.clone(),
            });
        }
        match store.get_bytes(&Layout.velero_record(name)).await {
            Ok(_) => Ok(BackupSource {
                name: name.to_owned(),
                format: SourceFormat::Velero,
                archive: Layout.velero_archive(name),
                compression: Compression::Gzip,
                store: store.clone(),
            }),
            Err(crate::store::StoreError::NotFound { .. }) => {
                Err(RestoreError::BackupNotFound { name: name.to_owned(), location: store.location().to_string() })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the archive and lists its objects. A Cairn archive is verified entry by entry against its
    /// manifest and record; a Velero archive is read once for its paths. Any unsafe path, mismatch,
    /// truncation or unknown format version is an error, before anything is applied.
    pub async fn index(&self) -> Result<Vec<IndexEntry>, RestoreError> {
        match &self.format {
            SourceFormat::Cairn(record) => {
                let verification =
                    verify_backup(&self.store, &self.name).await.map_err(|e| RestoreError::Archive(e.to_string()))?;
                if let Some(problem) = verification.problems.first() {
                    return Err(RestoreError::Corrupt {
                        name: self.name.clone(),
                        item: problem.path.clone(),
                        problem: problem.problem.clone(),
                    });
                }
                let keys = backup_keys(record);
                let manifest = self.store.get_bytes(&keys.manifest).await?;
                let text = zstd::decode_all(manifest.as_ref()).map_err(|e| RestoreError::Archive(e.to_string()))?;
                let mut entries = Vec::new();
                for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let entry: ManifestEntry =
                        serde_json::from_slice(line).map_err(|e| RestoreError::Archive(e.to_string()))?;
                    entries.extend(parse_item_path(&entry.path));
                }
                Ok(entries)
            }
            SourceFormat::Velero => {
                let (sender, mut receiver) = mpsc::channel(256);
                let reader = self.read_entries(None, sender).await?;
                let mut entries = Vec::new();
                while let Some(item) = receiver.recv().await {
                    let (path, content) = item?;
                    if path == VERSION_PATH {
                        check_format_version(&String::from_utf8_lossy(&content))?;
                    }
                    entries.extend(parse_item_path(&path));
                }
                reader.await.map_err(|e| RestoreError::Archive(e.to_string()))??;
                Ok(entries)
            }
        }
    }

    /// Streams the archive once, sending the content of the entries whose paths are in `wanted` (all
    /// entries, content only for the version file, when `None`). Every path is checked for safety.
    pub async fn read_entries(
        &self,
        wanted: Option<HashSet<String>>,
        sender: mpsc::Sender<Result<(String, Vec<u8>), RestoreError>>,
    ) -> Result<tokio::task::JoinHandle<Result<(), RestoreError>>, RestoreError> {
        let stream = self.store.get_stream(&self.archive).await?;
        let compression = self.compression;
        Ok(tokio::task::spawn_blocking(move || {
            let raw = SyncIoBridge::new(StreamReader::new(stream));
            let decompressed: Box<dyn Read> = match compression {
                Compression::Zstd => {
                    Box::new(zstd::Decoder::new(raw).map_err(|e| RestoreError::Archive(e.to_string()))?)
                }
                Compression::Gzip => Box::new(GzDecoder::new(raw)),
            };
            let mut tar = tar::Archive::new(decompressed);
            let corrupt =
                |e: std::io::Error| RestoreError::Archive(format!("the archive is truncated or corrupt: {e}"));
            for entry in tar.entries().map_err(corrupt)? {
                let mut entry = entry.map_err(corrupt)?;
                let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                if !path_is_safe(&path) {
                    return Err(RestoreError::UnsafePath { path });
                }
                let keep = match &wanted {
                    Some(wanted) => wanted.contains(&path),
                    None => true,
                };
                if !keep {
                    continue;
                }
                let mut content = Vec::new();
                if wanted.is_some() || path == VERSION_PATH {
                    entry.read_to_end(&mut content).map_err(corrupt)?;
                }
                if sender.blocking_send(Ok((path, content))).is_err() {
                    break;
                }
            }
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_parse_and_copies_do_not() {
        let entry = parse_item_path("resources/deployments.apps/namespaces/web/api.json").unwrap();
        assert_eq!(
            (entry.group_resource.as_str(), entry.namespace.as_deref(), entry.name.as_str()),
            ("deployments.apps", Some("web"), "api")
        );
        let cluster = parse_item_path("resources/namespaces/cluster/web.json").unwrap();
        assert_eq!((cluster.namespace, cluster.name.as_str()), (None, "web"));
        assert!(parse_item_path("resources/pods/v1-preferredversion/namespaces/web/p.json").is_none());
        assert!(parse_item_path("metadata/version").is_none());
    }

    #[test]
    fn only_format_version_1_is_read() {
        assert!(check_format_version("1.1.0\n").is_ok());
        assert!(check_format_version("1.0").is_ok());
        assert!(matches!(check_format_version("2.0.0"), Err(RestoreError::FormatVersion { .. })));
    }
}
