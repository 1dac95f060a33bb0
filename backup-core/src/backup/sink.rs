//! The archive sink: a blocking thread that takes pages of selected objects and streams them through the
//! archive writer into the archive's upload and a spooled manifest, counting per type as it goes; the
//! manifest is uploaded once the archive is stored.

use cairn_api::Compression;
use std::{
    collections::{BTreeMap, BTreeSet},
    io::{self, Seek},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{sync::mpsc, task::JoinHandle};

use super::collect::ObjectJson;
use crate::{
    archive::{ArchiveSummary, ArchiveWriter, ResourceList},
    store::{BackupKeys, Store, write_gzip_json},
};

/// One object on its way into the archive.
#[derive(Debug)]
pub(super) struct SinkObject {
    /// `deployments.apps`.
    pub group_resource: Arc<str>,
    /// The version it was read at.
    pub version: Arc<str>,
    /// `apps/v1/Deployment`, the resource list's key.
    pub type_key: Arc<str>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its JSON.
    pub json: ObjectJson,
}

/// What the sink produced.
#[derive(Debug)]
pub(super) struct SinkOutput {
    /// The archive's size and checksums.
    pub summary: ArchiveSummary,
    /// Objects per group-resource.
    pub counts: BTreeMap<String, u64>,
    /// The container images the archived workloads name.
    pub images: BTreeSet<String>,
}

/// Bytes the manifest's spool gathers before writing to its file.
const SPOOL_BUFFER: usize = 64 * 1024;

/// Starts the sink. Pages arrive on `pages`; the sink ends when every sender is dropped, completing its three
/// uploads (archive, manifest, resource list). `bytes` follows the compressed size for progress reports.
///
/// The manifest waits in an unnamed temporary file (gone when closed, whatever happens) until the archive
/// is stored, then goes up. Uploaded alongside, its own part buffer filled to 5 MiB again and again at the
/// same time as the archive's once a manifest passed a part (about 120,000 objects; 12.6 MiB at 300,000).
/// The resource list spills its names to another such file (about 4 bytes an object, 1.2 MiB at 300,000,
/// kept in memory before) and goes up last, read back as it is compressed.
pub(super) fn spawn_sink(
    store: &Store,
    keys: &BackupKeys,
    compression: Compression,
    mtime: u64,
    mut pages: mpsc::Receiver<Vec<SinkObject>>,
    bytes: Arc<AtomicU64>,
) -> JoinHandle<io::Result<SinkOutput>> {
    let archive = store.upload(&keys.archive);
    let mut manifest = store.upload(&keys.manifest);
    let listed = store.upload(&keys.resource_list);
    tokio::task::spawn_blocking(move || {
        let spool = io::BufWriter::with_capacity(SPOOL_BUFFER, spool_file()?);
        let mut writer = ArchiveWriter::new(archive, spool, compression, mtime)?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut resource_list = ResourceList::spilling_to(spool_file()?);
        let mut images = BTreeSet::new();
        // Each object's complete JSON is assembled here in turn: one buffer, not one per object.
        let mut json = Vec::new();
        while let Some(page) = pages.blocking_recv() {
            for object in page {
                let namespace = object.namespace.as_deref();
                object.json.write_complete(&mut json);
                writer.add_object(&object.group_resource, &object.version, namespace, &object.name, &json)?;
                *counts.entry(object.group_resource.to_string()).or_default() += 1;
                super::images::collect(&object.group_resource, object.json.received(), &mut images);
                resource_list.push(&object.type_key, namespace, &object.name);
            }
            bytes.store(writer.bytes_written(), Ordering::Relaxed);
        }
        let (archive, spool, summary) = writer.finish()?;
        archive.finish()?;
        let mut spooled = spool.into_inner().map_err(io::IntoInnerError::into_error)?;
        spooled.rewind()?;
        io::copy(&mut spooled, &mut manifest)?;
        manifest.finish()?;
        // `{"<apiVersion>/<Kind>": ["ns/name", ...]}` in archive order, streamed: the names are read back from
        // their spill file as they are compressed.
        write_gzip_json(listed, &resource_list)?.finish()?;
        bytes.store(summary.size, Ordering::Relaxed);
        Ok(SinkOutput { summary, counts, images })
    })
}

/// A spool (the manifest's, the resource list's): an unnamed file in the temporary directory, or an error
/// saying how to give one.
fn spool_file() -> io::Result<std::fs::File> {
    tempfile::tempfile().map_err(|e| {
        let dir = std::env::temp_dir();
        io::Error::new(
            e.kind(),
            format!(
                "cannot create a temporary file for the backup in {}: {e}; set TMPDIR to a writable directory",
                dir.display()
            ),
        )
    })
}
