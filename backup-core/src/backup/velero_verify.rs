//! Verifying a backup Velero wrote, as far as it can be without checksums: its archive reads whole (no
//! entry past the size limit), every object parses and is what its path says, and the objects are as many as
//! its resource list names.

use std::collections::BTreeMap;

use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{BackupRecord, InspectError, Verification, inspect::backup_keys};
use crate::{
    archive::{Flow, ItemPath, ReadError, VerifyProblem, VerifyReport, check_entry, read_archive},
    store::Store,
};

/// Reads the Velero backup `record`'s archive once and checks what can be checked.
pub(crate) async fn verify_velero(
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
