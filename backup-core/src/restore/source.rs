//! Where a restore reads from: a Cairn backup (checked against its manifest before anything is applied) or
//! a backup Velero wrote (`velero-backup.json` + `<name>.tar.gz`, every entry read and checked once). The
//! archive is read as a stream through `archive::read_archive`, one pass per wave, so memory does not grow
//! with the backup; the bytes of objects waiting to be applied are bounded by a budget, whatever the
//! archive holds.

use cairn_api::Compression;
use std::{ops::Deref, sync::Arc};

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::RestoreError;
use crate::{
    archive::{
        FORMAT_VERSION, Flow, ItemPath, ManifestEntry, ManifestReader, ReadError, VERSION_PATH, check_entry,
        read_archive, sha256_of_hex,
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
        ItemPath::parse(path).map(|item| IndexEntry { item, path: path.to_owned() })
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
pub(crate) struct ReadItem<S = OwnedSemaphorePermit> {
    /// The object.
    pub(crate) entry: IndexEntry,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
    /// Its share of the budget.
    pub(crate) share: S,
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

    /// Checks the archive, then calls `visit` with each archived object in archive order (nothing is kept
    /// here: a restore remembers only what it chooses to, in counts and names of namespaces and types) and
    /// returns how many there are. A Cairn archive is verified entry by entry against its manifest and
    /// record; a Velero archive is read once, every object checked against its path. Any unsafe path,
    /// mismatch, truncation, entry over the limit or unknown format version is an error, before anything is
    /// applied; a failed read of the store is [`RestoreError::StoreRead`].
    pub async fn index(&self, mut visit: impl FnMut(IndexEntry)) -> Result<u64, RestoreError> {
        let (sender, mut receiver) = mpsc::channel::<Vec<IndexEntry>>(2);
        let reading = match &self.format {
            SourceFormat::Cairn(record) => self.cairn_index(record, sender).await?,
            SourceFormat::Velero => self.velero_index(sender).await?,
        };
        let mut objects = 0;
        while let Some(batch) = receiver.recv().await {
            objects += batch.len() as u64;
            batch.into_iter().for_each(&mut visit);
        }
        reading.await.map_err(|e| RestoreError::Archive(e.to_string()))??;
        Ok(objects)
    }

    async fn cairn_index(&self, record: &BackupRecord, sender: Batches) -> Result<Reading, RestoreError> {
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
        Ok(tokio::task::spawn_blocking(move || {
            let raw = SyncIoBridge::new(StreamReader::new(stream));
            let mut manifest = ManifestReader::new(raw).map_err(|e| RestoreError::StoreRead(e.to_string()))?;
            let mut batch = Batch::new(sender);
            while let Some(line) = next_line(&mut manifest)? {
                if let Some(entry) = IndexEntry::parse(&line.path)
                    && batch.push(entry).is_err()
                {
                    return Ok(());
                }
            }
            batch.send().ok();
            Ok(())
        }))
    }

    async fn velero_index(&self, sender: Batches) -> Result<Reading, RestoreError> {
        let stream = self.store.get_stream(&self.archive).await?;
        let (name, compression, limit) = (self.name.clone(), self.compression, self.max_entry_bytes);
        Ok(tokio::task::spawn_blocking(move || {
            let mut refused: Option<RestoreError> = None;
            let mut batch = Batch::new(sender);
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
                    if batch.push(item).is_err() {
                        return Ok(Flow::Stop);
                    }
                }
                Ok(Flow::Continue)
            })
            .map_err(|e| read_error(&name, e))?;
            if let Some(refused) = refused {
                return Err(refused);
            }
            batch.send().ok();
            Ok(())
        }))
    }

    /// Streams the archive once on a blocking thread, sending the `expected` objects `wanted` takes as they
    /// are read, and stopping after the last. A Cairn archive is read beside its manifest, entry for entry
    /// (the order the backup wrote and the verification checked), and each object sent must have the size
    /// and SHA-256 its line lists, so what is applied is what was verified, with nothing remembered per
    /// object in between. Each sent item holds its share of `budget` until dropped, so at most the budget's
    /// bytes are read ahead of the applying. An entry that is not what the manifest says (the archive
    /// changed since it was verified) ends the pass with an error.
    pub(crate) async fn read_pass(
        &self,
        wanted: Wanted,
        expected: u64,
        budget: Arc<Semaphore>,
        sender: mpsc::Sender<Result<ReadItem, RestoreError>>,
    ) -> Result<Reading, RestoreError> {
        let stream = self.store.get_stream(&self.archive).await?;
        let manifest = match &self.format {
            SourceFormat::Cairn(record) => Some(self.store.get_stream(&backup_keys(record).manifest).await?),
            SourceFormat::Velero => None,
        };
        let (name, compression, limit) = (self.name.clone(), self.compression, self.max_entry_bytes);
        let runtime = tokio::runtime::Handle::current();
        Ok(tokio::task::spawn_blocking(move || {
            let manifest = match manifest {
                Some(stream) => Some(
                    ManifestReader::new(SyncIoBridge::new(StreamReader::new(stream)))
                        .map_err(|e| RestoreError::StoreRead(e.to_string()))?,
                ),
                None => None,
            };
            let pass = Pass { name: &name, compression, limit, wanted: &*wanted, expected };
            pass.run(
                SyncIoBridge::new(StreamReader::new(stream)),
                manifest,
                |size| runtime.block_on(budget.clone().acquire_many_owned(permits_for(size))).ok(),
                |item| sender.blocking_send(Ok(item)).is_ok(),
            )
        }))
    }
}

/// One pass over an archive (and its manifest, for Cairn backups), on a blocking thread.
struct Pass<'a> {
    /// The backup's name, for errors.
    name: &'a str,
    compression: Compression,
    limit: u64,
    wanted: &'a (dyn Fn(&ItemPath) -> bool + Send + Sync),
    /// Objects `wanted` takes: the pass stops after the last.
    expected: u64,
}

impl Pass<'_> {
    /// Reads `archive` beside `manifest`, and for each wanted object takes a share (`reserve`, given its
    /// size; `None` ends the pass) and hands the object over (`deliver`; false ends the pass).
    fn run<S>(
        &self,
        archive: impl std::io::Read,
        mut manifest: Option<ManifestReader<impl std::io::Read>>,
        mut reserve: impl FnMut(u64) -> Option<S>,
        mut deliver: impl FnMut(ReadItem<S>) -> bool,
    ) -> Result<(), RestoreError> {
        let mut remaining = self.expected;
        let mut changed: Option<RestoreError> = None;
        let changed_at = |path: &str, what: &str| RestoreError::Corrupt {
            name: self.name.to_owned(),
            item: path.to_owned(),
            problem: format!("{what} since the backup was verified; nothing more is read from it"),
        };
        read_archive(archive, self.compression, self.limit, |mut entry| {
            let line = match manifest.as_mut().map(next_line).transpose() {
                Ok(line) => line.flatten(),
                Err(error) => {
                    changed = Some(error);
                    return Ok(Flow::Stop);
                }
            };
            if manifest.is_some() && line.as_ref().is_none_or(|l| l.path != entry.path) {
                changed = Some(changed_at(entry.path, "the archive or its manifest changed"));
                return Ok(Flow::Stop);
            }
            let Some(item) = IndexEntry::parse(entry.path).filter(|item| (self.wanted)(item)) else {
                return Ok(Flow::Continue);
            };
            let Some(share) = reserve(entry.size) else { return Ok(Flow::Stop) };
            let bytes = entry.read_all()?;
            if let Some(line) = line
                && (line.size != bytes.len() as u64
                    || sha256_of_hex(&line.sha256) != Some(Sha256::digest(&bytes).into()))
            {
                changed = Some(changed_at(entry.path, "its content changed"));
                return Ok(Flow::Stop);
            }
            remaining = remaining.saturating_sub(1);
            if !deliver(ReadItem { entry: item, bytes, share }) || remaining == 0 {
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        })
        .map_err(|e| read_error(self.name, e))?;
        changed.map_or(Ok(()), Err)
    }
}

/// Which archived objects a pass sends on; it runs on the reading thread.
pub(crate) type Wanted = Arc<dyn Fn(&ItemPath) -> bool + Send + Sync>;

/// A blocking read of the archive or manifest, and how it ended.
pub(crate) type Reading = tokio::task::JoinHandle<Result<(), RestoreError>>;

/// Where a blocking read sends index entries, a batch at a time.
type Batches = mpsc::Sender<Vec<IndexEntry>>;

/// Entries handed over per message: a few per message would cost a wake-up each.
const BATCH: usize = 512;

/// Index entries gathered on the reading thread and sent a batch at a time.
struct Batch {
    entries: Vec<IndexEntry>,
    sender: Batches,
}

impl Batch {
    fn new(sender: Batches) -> Self {
        Batch { entries: Vec::with_capacity(BATCH), sender }
    }

    /// Adds one entry; Err when nobody receives any more.
    fn push(&mut self, entry: IndexEntry) -> Result<(), ()> {
        self.entries.push(entry);
        if self.entries.len() == BATCH { self.send() } else { Ok(()) }
    }

    /// Sends what is gathered; Err when nobody receives any more.
    fn send(&mut self) -> Result<(), ()> {
        let entries = std::mem::replace(&mut self.entries, Vec::with_capacity(BATCH));
        if entries.is_empty() { Ok(()) } else { self.sender.blocking_send(entries).map_err(drop) }
    }
}

/// The manifest's next line; a line that cannot be read means the manifest changed since it was verified.
fn next_line(manifest: &mut ManifestReader<impl std::io::Read>) -> Result<Option<ManifestEntry>, RestoreError> {
    match manifest.next_entry().map_err(|e| RestoreError::StoreRead(e.to_string()))? {
        Ok(line) => Ok(line),
        Err(problem) => Err(RestoreError::Archive(format!("the manifest changed: {problem}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(values: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
        let mut writer = crate::archive::ArchiveWriter::new(Vec::new(), Vec::new(), Compression::Zstd, 0).unwrap();
        for (name, value) in values {
            let json = format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"ns"}},"data":{{"v":"{value}"}}}}"#
            );
            writer.add_object("configmaps", "v1", Some("ns"), name, json.as_bytes()).unwrap();
        }
        let (archive, manifest, _) = writer.finish().unwrap();
        (archive, manifest)
    }

    /// Runs a pass taking the objects whose names are in `names`, and returns what it handed over.
    fn pass(archive: &[u8], manifest: &[u8], names: &[&str]) -> Result<Vec<String>, RestoreError> {
        let wanted = |item: &ItemPath| names.contains(&item.name.as_str());
        let pass = Pass {
            name: "b",
            compression: Compression::Zstd,
            limit: crate::archive::DEFAULT_MAX_ENTRY_BYTES,
            wanted: &wanted,
            expected: names.len() as u64,
        };
        let mut taken = Vec::new();
        let manifest = ManifestReader::new(manifest).unwrap();
        pass.run(
            archive,
            Some(manifest),
            |_| Some(()),
            |item| {
                taken.push(item.entry.name.clone());
                true
            },
        )?;
        Ok(taken)
    }

    #[test]
    fn a_pass_hands_over_the_wanted_objects_checked_against_the_manifest() {
        let (archive, manifest) = archive(&[("a", "1"), ("b", "2"), ("c", "3")]);
        assert_eq!(pass(&archive, &manifest, &["a", "c"]).unwrap(), ["a", "c"]);
        assert_eq!(pass(&archive, &manifest, &["b"]).unwrap(), ["b"]);
    }

    #[test]
    fn an_archive_changed_since_it_was_verified_ends_the_pass_before_the_changed_object() {
        let (_, manifest) = archive(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let (changed, _) = archive(&[("a", "1"), ("b", "7"), ("c", "3")]);
        let error = pass(&changed, &manifest, &["a", "b", "c"]).unwrap_err();
        assert!(
            matches!(&error, RestoreError::Corrupt { item, problem, .. }
                if item.ends_with("/b.json") && problem.contains("content changed")),
            "{error}"
        );
        // An object slipped in between two listed ones is refused too, even when it is not wanted.
        let (inserted, _) = archive(&[("a", "1"), ("x", "9"), ("b", "2"), ("c", "3")]);
        let error = pass(&inserted, &manifest, &["c"]).unwrap_err();
        assert!(error.to_string().contains("the archive or its manifest changed"), "{error}");
    }

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
