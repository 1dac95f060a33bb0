//! Where a restore reads from: a Cairn backup (checked against its manifest before anything is applied) or
//! a backup Velero wrote (`velero-backup.json` + `<name>.tar.gz`, every entry read and checked once). The
//! archive is read as a stream through `archive::read_archive`, one pass per wave, so memory does not grow
//! with the backup; the bytes of objects waiting to be applied are bounded by a budget, whatever the
//! archive holds.

use cairn_api::Compression;
use std::{collections::HashMap, ops::Deref, sync::Arc};

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::RestoreError;
use crate::{
    archive::{
        FORMAT_VERSION, Flow, ItemPath, ManifestReader, ReadError, VERSION_PATH, check_entry, read_archive,
        sha256_of_hex,
    },
    backup::{BackupRecord, InspectError, Phase, backup_keys, verify_archive},
    store::{Layout, Store, StoreError},
};

/// An archived object, known from its path (and, for Cairn backups, its manifest line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// What its path says it is.
    pub item: ItemPath,
    /// Its path in the archive.
    pub path: String,
    /// The SHA-256 the manifest lists for it (Cairn backups): every later read is checked against it, so
    /// what is applied is what was verified. Kept as bytes: an index holds one per archived object.
    pub sha256: Option<[u8; 32]>,
}

impl Deref for IndexEntry {
    type Target = ItemPath;

    fn deref(&self) -> &ItemPath {
        &self.item
    }
}

impl IndexEntry {
    /// The entry at `path`, if the path names an object.
    pub fn parse(path: &str) -> Option<IndexEntry> {
        ItemPath::parse(path).map(|item| IndexEntry { item, path: path.to_owned(), sha256: None })
    }

    /// What its path says it is.
    pub fn item(&self) -> ItemPath {
        self.item.clone()
    }
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

/// An archived object read for applying, with its share of the memory budget: the share is to be held
/// until the object is applied (its bytes become a parsed object and a request body on the way).
#[derive(Debug)]
pub(crate) struct ReadItem {
    /// The entry's path.
    pub(crate) path: String,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
    /// Its share of the budget.
    pub(crate) share: OwnedSemaphorePermit,
}

/// Bytes of archived objects read but not yet applied, across a restore: objects are small, so this is
/// only ever reached by an archive of huge entries, and keeps even that one's memory bounded (each
/// object in flight is held about three times: parsed, as a request body, in the HTTP client).
pub(crate) const BUDGET_BYTES: u64 = 16 * 1024 * 1024;
/// The budget's unit: one permit per KiB.
const BUDGET_UNIT: u64 = 1024;

/// The memory budget for objects in flight, sized so that the largest entry always fits.
pub(crate) fn budget(max_entry_bytes: u64) -> Arc<Semaphore> {
    let bytes = BUDGET_BYTES.max(max_entry_bytes.saturating_mul(2));
    Arc::new(Semaphore::new((bytes / BUDGET_UNIT).min(Semaphore::MAX_PERMITS as u64) as usize))
}

/// The permits an entry of `size` bytes takes (the budget is at least twice the largest entry).
fn permits_for(size: u64) -> u32 {
    (size / BUDGET_UNIT + 1).min(u64::from(u32::MAX)) as u32
}

/// A read failure of the archive, as a restore error.
fn read_error(name: &str, error: ReadError) -> RestoreError {
    match error {
        ReadError::Store(reason) => RestoreError::StoreRead(reason),
        ReadError::UnsafePath { path } => RestoreError::UnsafePath { path },
        other @ (ReadError::TooLarge { .. } | ReadError::Damaged(_)) => {
            let item = match &other {
                ReadError::TooLarge { path, .. } => path.clone(),
                _ => "<archive>".to_owned(),
            };
            RestoreError::Corrupt { name: name.to_owned(), item, problem: other.to_string() }
        }
    }
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
    max_entry_bytes: u64,
}

impl BackupSource {
    /// Opens backup `name` in `store`: Cairn's record first, else Velero's. No entry of its archive may be
    /// larger than `max_entry_bytes`.
    pub async fn open(store: &Store, name: &str, max_entry_bytes: u64) -> Result<BackupSource, RestoreError> {
        if let Some(record) = crate::backup::read_backup(store, name).await?
            && !record.is_velero()
        {
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
                max_entry_bytes,
            });
        }
        match store.get_bytes(&Layout.velero_record(name)).await {
            Ok(_) => Ok(BackupSource {
                name: name.to_owned(),
                format: SourceFormat::Velero,
                archive: Layout.velero_archive(name),
                compression: Compression::Gzip,
                store: store.clone(),
                max_entry_bytes,
            }),
            Err(StoreError::NotFound { .. }) => {
                Err(RestoreError::BackupNotFound { name: name.to_owned(), location: store.location().to_string() })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the archive and lists its objects. A Cairn archive is verified entry by entry against its
    /// manifest and record; a Velero archive is read once, every object checked against its path. Any
    /// unsafe path, mismatch, truncation, entry over the limit or unknown format version is an error,
    /// before anything is applied; a failed read of the store is [`RestoreError::StoreRead`].
    pub async fn index(&self) -> Result<Vec<IndexEntry>, RestoreError> {
        match &self.format {
            SourceFormat::Cairn(record) => self.cairn_index(record).await,
            SourceFormat::Velero => self.velero_index().await,
        }
    }

    async fn cairn_index(&self, record: &BackupRecord) -> Result<Vec<IndexEntry>, RestoreError> {
        let verification = match verify_archive(&self.store, record, self.max_entry_bytes).await {
            Ok(verification) => verification,
            Err(InspectError::Archive(crate::archive::ArchiveError::Read(ReadError::Store(reason)))) => {
                return Err(RestoreError::StoreRead(reason));
            }
            Err(InspectError::Store(error)) => return Err(error.into()),
            Err(other) => return Err(RestoreError::Archive(other.to_string())),
        };
        if let Some(problem) = verification.problems.first() {
            return Err(RestoreError::Corrupt {
                name: self.name.clone(),
                item: problem.path.clone(),
                problem: problem.problem.clone(),
            });
        }
        let stream = self.store.get_stream(&backup_keys(record).manifest).await?;
        tokio::task::spawn_blocking(move || {
            let raw = SyncIoBridge::new(StreamReader::new(stream));
            let mut manifest = ManifestReader::new(raw).map_err(|e| RestoreError::StoreRead(e.to_string()))?;
            let mut entries = Vec::new();
            loop {
                match manifest.next_entry().map_err(|e| RestoreError::StoreRead(e.to_string()))? {
                    Ok(Some(line)) => {
                        let Some(sha256) = sha256_of_hex(&line.sha256) else {
                            let problem = format!("the manifest changed: {:?} is not a SHA-256", line.sha256);
                            return Err(RestoreError::Archive(problem));
                        };
                        entries.extend(
                            IndexEntry::parse(&line.path).map(|entry| IndexEntry { sha256: Some(sha256), ..entry }),
                        )
                    }
                    Ok(None) => return Ok(entries),
                    Err(problem) => return Err(RestoreError::Archive(format!("the manifest changed: {problem}"))),
                }
            }
        })
        .await
        .map_err(|e| RestoreError::Archive(e.to_string()))?
    }

    async fn velero_index(&self) -> Result<Vec<IndexEntry>, RestoreError> {
        let stream = self.store.get_stream(&self.archive).await?;
        let (name, compression, limit) = (self.name.clone(), self.compression, self.max_entry_bytes);
        tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            let mut refused: Option<RestoreError> = None;
            let raw = SyncIoBridge::new(StreamReader::new(stream));
            read_archive(raw, compression, limit, |mut entry| {
                if entry.path == VERSION_PATH {
                    let version = entry.read_all()?;
                    if let Err(error) = check_format_version(&String::from_utf8_lossy(&version)) {
                        refused = Some(error);
                        return Ok(Flow::Stop);
                    }
                } else if let Some(item) = IndexEntry::parse(entry.path) {
                    if let Err(problem) = check_entry(&item, &entry.read_all()?) {
                        let problem = format!("the object is not what its path says: {problem}");
                        refused = Some(RestoreError::Corrupt { name: name.clone(), item: item.path, problem });
                        return Ok(Flow::Stop);
                    }
                    entries.push(item);
                }
                Ok(Flow::Continue)
            })
            .map_err(|e| read_error(&name, e))?;
            refused.map_or(Ok(entries), Err)
        })
        .await
        .map_err(|e| RestoreError::Archive(e.to_string()))?
    }

    /// Streams the archive once on a blocking thread, sending the entries whose paths are in `wanted` (with
    /// the SHA-256 each must have, when known) as they are read. Each sent item holds its share of `budget`
    /// until dropped, so at most the budget's bytes are read ahead of the applying. An entry whose content
    /// is not what the index says (the archive changed since it was verified) ends the pass with an error.
    pub(crate) async fn read_pass(
        &self,
        wanted: Arc<HashMap<String, IndexEntry>>,
        budget: Arc<Semaphore>,
        sender: mpsc::Sender<Result<ReadItem, RestoreError>>,
    ) -> Result<tokio::task::JoinHandle<Result<(), RestoreError>>, RestoreError> {
        let stream = self.store.get_stream(&self.archive).await?;
        let (name, compression, limit) = (self.name.clone(), self.compression, self.max_entry_bytes);
        let runtime = tokio::runtime::Handle::current();
        Ok(tokio::task::spawn_blocking(move || {
            let raw = SyncIoBridge::new(StreamReader::new(stream));
            let mut remaining = wanted.len();
            let mut changed: Option<RestoreError> = None;
            read_archive(raw, compression, limit, |mut entry| {
                let Some(expected) = wanted.get(entry.path).map(|e| e.sha256) else { return Ok(Flow::Continue) };
                let permits = permits_for(entry.size);
                let Ok(share) = runtime.block_on(budget.clone().acquire_many_owned(permits)) else {
                    return Ok(Flow::Stop);
                };
                let bytes = entry.read_all()?;
                if let Some(expected) = expected
                    && Sha256::digest(&bytes).as_slice() != expected
                {
                    let problem =
                        "its content changed since the backup was verified; nothing more is read from it".into();
                    changed = Some(RestoreError::Corrupt { name: name.clone(), item: entry.path.to_owned(), problem });
                    return Ok(Flow::Stop);
                }
                let item = ReadItem { path: entry.path.to_owned(), bytes, share };
                remaining -= 1;
                if sender.blocking_send(Ok(item)).is_err() || remaining == 0 {
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            })
            .map_err(|e| read_error(&name, e))?;
            changed.map_or(Ok(()), Err)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_format_version_1_is_read() {
        assert!(check_format_version("1.1.0\n").is_ok());
        assert!(check_format_version("1.0").is_ok());
        assert!(matches!(check_format_version("2.0.0"), Err(RestoreError::FormatVersion { .. })));
    }

    #[test]
    fn the_budget_always_fits_the_largest_entry() {
        let budget = budget(100 * 1024 * 1024);
        assert!(budget.available_permits() as u64 * BUDGET_UNIT >= 100 * 1024 * 1024);
        assert!(permits_for(100 * 1024 * 1024) as usize <= budget.available_permits());
    }
}
