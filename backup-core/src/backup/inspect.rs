//! Reading stored backups back: their files, verification of the archive against the record and the
//! manifest, and download of the archive.

use std::collections::BTreeMap;

use futures::{Stream, TryStreamExt};
use tokio::io::AsyncWrite;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{BackupRecord, BackupResults, Phase};
use crate::{
    archive::{
        ArchiveError, DEFAULT_MAX_ENTRY_BYTES, Flow, ItemPath, ReadError, VerifyProblem, VerifyReport, check_entry,
        read_archive, verify,
    },
    store::{BackupKeys, Layout, Store, StoreError},
};

/// Why a stored backup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// No record of that name.
    #[error("no backup named {name:?} in {location}; `cairn backup get` lists the backups there")]
    NotFound {
        /// The name.
        name: String,
        /// The location.
        location: String,
    },
    /// The backup failed and has no archive.
    #[error("backup {name:?} is {phase}; it has no archive{}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    NoArchive {
        /// The name.
        name: String,
        /// Its phase.
        phase: &'static str,
        /// Its failure reason.
        reason: Option<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the archive failed.
    #[error("reading the archive failed: {0}")]
    Io(#[from] std::io::Error),
    /// Writing the archive where it was asked for failed (a full disk, a closed pipe).
    #[error("writing the archive out failed: {0}")]
    Write(#[source] std::io::Error),
    /// The archive could not be read to its end (an outage of the store, most often).
    #[error("{0}")]
    Archive(#[from] ArchiveError),
}

/// The record of `name`, or a NotFound error that says how to list backups.
pub async fn find_backup(store: &Store, name: &str) -> Result<BackupRecord, InspectError> {
    super::read_backup(store, name)
        .await?
        .ok_or_else(|| InspectError::NotFound { name: name.to_owned(), location: store.location().to_string() })
}

/// The keys of a backup's files.
pub fn backup_keys(record: &BackupRecord) -> BackupKeys {
    if record.is_velero() {
        return super::velero::keys(record.name());
    }
    Layout.backup_keys(record.name(), &record.status.run, record.compression())
}

fn require_archive(record: &BackupRecord) -> Result<(), InspectError> {
    let velero_archive = record.is_velero() && matches!(record.status.phase, Phase::Completed | Phase::PartiallyFailed);
    if record.status.archive.is_some() || velero_archive {
        return Ok(());
    }
    Err(InspectError::NoArchive {
        name: record.name().to_owned(),
        phase: record.status.phase.as_str(),
        reason: record.status.failure_reason.clone(),
    })
}

/// The backup's log.
pub async fn read_log(store: &Store, record: &BackupRecord) -> Result<String, InspectError> {
    Ok(store.get_gzip_text(&backup_keys(record).log).await?)
}

/// The backup's results (counts, warnings, errors).
pub async fn read_results(store: &Store, record: &BackupRecord) -> Result<BackupResults, InspectError> {
    if record.status.phase == Phase::Failed {
        return Ok(BackupResults::default());
    }
    if record.is_velero() {
        let key = backup_keys(record).results;
        let json = store.get_gzip_text(&key).await?;
        return super::velero::results_of(json.as_bytes()).map_err(|e| {
            StoreError::Corrupt { key: key.to_string(), problem: format!("not Velero's results: {e}") }.into()
        });
    }
    Ok(store.get_gzip_json(&backup_keys(record).results).await?)
}

/// The backup's resource list: `{"<apiVersion>/<Kind>": ["ns/name", ...]}`.
pub async fn read_resource_list(
    store: &Store,
    record: &BackupRecord,
) -> Result<BTreeMap<String, Vec<String>>, InspectError> {
    require_archive(record)?;
    Ok(store.get_gzip_json(&backup_keys(record).resource_list).await?)
}

/// The outcome of `cairn backup verify`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The backup.
    pub name: String,
    /// What the archive read showed.
    pub report: VerifyReport,
    /// Every mismatch: the record's checksums, then the entries.
    pub problems: Vec<VerifyProblem>,
}

impl Verification {
    /// Whether the archive is exactly what was written.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Streams the archive and its manifest once and checks them against the record's checksums and each
/// other, entry by entry (entries up to [`DEFAULT_MAX_ENTRY_BYTES`]). Memory stays flat whatever the
/// archive's size. A failed read of the store is an error, never a problem of the backup.
pub async fn verify_backup(store: &Store, name: &str) -> Result<Verification, InspectError> {
    let record = find_backup(store, name).await?;
    verify_archive(store, &record, DEFAULT_MAX_ENTRY_BYTES).await
}

/// [`verify_backup`] for a record already read, with entries up to `max_entry_bytes`.
pub async fn verify_archive(
    store: &Store,
    record: &BackupRecord,
    max_entry_bytes: u64,
) -> Result<Verification, InspectError> {
    let name = record.name();
    require_archive(record)?;
    if record.is_velero() {
        return verify_velero(store, record, max_entry_bytes).await;
    }
    let expected = record.status.archive.clone().expect("checked above");
    let keys = backup_keys(record);
    let mut problems = Vec::new();
    let archive = store.get_stream(&keys.archive).await;
    let manifest = store.get_stream(&keys.manifest).await;
    let (archive, manifest) = match (archive, manifest) {
        (Ok(a), Ok(m)) => (a, m),
        (a, m) => {
            // A missing file is damage; any other failure is the store's, and says nothing of the backup.
            for (result, key) in [(a.err(), &keys.archive), (m.err(), &keys.manifest)] {
                match result {
                    Some(error @ StoreError::NotFound { .. }) => {
                        problems.push(VerifyProblem { path: key.to_string(), problem: error.to_string() })
                    }
                    Some(error) => return Err(error.into()),
                    None => {}
                }
            }
            let report = VerifyReport {
                entries_checked: 0,
                archive_size: 0,
                archive_sha256: String::new(),
                manifest_sha256: String::new(),
                problems: vec![],
            };
            return Ok(Verification { name: name.to_owned(), report, problems });
        }
    };
    let compression = record.compression();
    let report = tokio::task::spawn_blocking(move || {
        verify(
            SyncIoBridge::new(StreamReader::new(archive)),
            SyncIoBridge::new(StreamReader::new(manifest)),
            compression,
            max_entry_bytes,
        )
    })
    .await
    .map_err(std::io::Error::other)??;
    if report.archive_size != expected.size || report.archive_sha256 != expected.sha256 {
        problems.push(VerifyProblem {
            path: keys.archive.to_string(),
            problem: format!(
                "the stored archive is {} bytes with SHA-256 {}, the record says {} bytes with {}",
                report.archive_size, report.archive_sha256, expected.size, expected.sha256
            ),
        });
    }
    if report.manifest_sha256 != expected.manifest_sha256 {
        problems.push(VerifyProblem {
            path: keys.manifest.to_string(),
            problem: format!(
                "the manifest's SHA-256 is {}, the record says {}",
                report.manifest_sha256, expected.manifest_sha256
            ),
        });
    }
    if report.entries_checked != expected.entries && report.problems.is_empty() {
        problems.push(VerifyProblem {
            path: keys.archive.to_string(),
            problem: format!("{} entries read, the record says {}", report.entries_checked, expected.entries),
        });
    }
    problems.extend(report.problems.iter().cloned());
    Ok(Verification { name: name.to_owned(), report, problems })
}

/// What can be verified of a backup Velero wrote, without checksums: its archive reads whole (no entry past
/// the size limit), every object parses and is what its path says, and the objects are as many as its resource
/// list names.
/// Reads the Velero backup `record`'s archive once and checks what can be checked.
async fn verify_velero(
    store: &Store,
    record: &BackupRecord,
    max_entry_bytes: u64,
) -> Result<Verification, InspectError> {
    let keys = backup_keys(record);
    let stream = store.get_stream(&keys.archive).await?;
    let compression = record.compression();
    let read = tokio::task::spawn_blocking(move || {
        let mut problems = Vec::new();
        let mut objects = 0_u64;
        let raw = SyncIoBridge::new(StreamReader::new(stream));
        let entries = read_archive(raw, compression, max_entry_bytes, |mut entry| {
            if let Some(item) = ItemPath::parse(entry.path) {
                let path = entry.path.to_owned();
                if let Err(problem) = check_entry(&item, &entry.read_all()?) {
                    problems.push(VerifyProblem { path, problem });
                }
                objects += 1;
            }
            Ok(Flow::Continue)
        });
        (entries, objects, problems)
    })
    .await
    .map_err(std::io::Error::other)?;
    let (entries, objects, mut problems) = read;
    let entries_checked = match entries {
        Ok(entries) => entries,
        Err(ReadError::Store(outage)) => return Err(std::io::Error::other(outage).into()),
        Err(damage) => {
            problems.push(VerifyProblem { path: keys.archive.to_string(), problem: damage.to_string() });
            0
        }
    };
    let listed: BTreeMap<String, Vec<String>> = store.get_gzip_json(&keys.resource_list).await?;
    let named: u64 = listed.values().map(|names| names.len() as u64).sum();
    if problems.is_empty() && named != objects {
        problems.push(VerifyProblem {
            path: keys.resource_list.to_string(),
            problem: format!("the resource list names {named} objects, the archive holds {objects}"),
        });
    }
    let report = VerifyReport {
        entries_checked,
        archive_size: 0,
        archive_sha256: String::new(),
        manifest_sha256: String::new(),
        problems: problems.clone(),
    };
    Ok(Verification { name: record.name().to_owned(), report, problems })
}

/// The archive's content as a byte stream, for downloads.
pub async fn archive_stream(
    store: &Store,
    record: &BackupRecord,
) -> Result<impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<>, InspectError> {
    require_archive(record)?;
    Ok(store.get_stream(&backup_keys(record).archive).await?)
}

/// Copies the archive into `out` and returns the bytes copied. A failure says which side failed: reading
/// from the store, or writing to `out`.
pub async fn download_archive(
    store: &Store,
    record: &BackupRecord,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, InspectError> {
    use tokio::io::AsyncWriteExt;
    let mut stream = std::pin::pin!(archive_stream(store, record).await?);
    let mut copied = 0;
    while let Some(chunk) = stream.try_next().await? {
        out.write_all(&chunk).await.map_err(InspectError::Write)?;
        copied += chunk.len() as u64;
    }
    out.flush().await.map_err(InspectError::Write)?;
    Ok(copied)
}
