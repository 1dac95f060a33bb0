//! The archive sink: a blocking thread that takes pages of selected objects and streams them through the
//! archive writer into two uploads (archive and manifest), counting per type as it goes.

use cairn_api::Compression;
use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    archive::{ArchiveSummary, ArchiveWriter, ResourceList},
    store::{BackupKeys, Store},
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
    pub json: Vec<u8>,
}

/// What the sink produced.
#[derive(Debug)]
pub(super) struct SinkOutput {
    /// The archive's size and checksums.
    pub summary: ArchiveSummary,
    /// Objects per group-resource.
    pub counts: BTreeMap<String, u64>,
    /// `{"<apiVersion>/<Kind>": ["ns/name", ...]}`, in archive order.
    pub resource_list: ResourceList,
    /// The container images the archived workloads name.
    pub images: BTreeSet<String>,
}

/// Starts the sink. Pages arrive on `pages`; the sink ends when every sender is dropped, completing both
/// uploads. `bytes` follows the compressed size for progress reports.
pub(super) fn spawn_sink(
    store: &Store,
    keys: &BackupKeys,
    compression: Compression,
    mtime: u64,
    mut pages: mpsc::Receiver<Vec<SinkObject>>,
    bytes: Arc<AtomicU64>,
) -> JoinHandle<io::Result<SinkOutput>> {
    let archive = store.upload(&keys.archive);
    let manifest = store.upload(&keys.manifest);
    tokio::task::spawn_blocking(move || {
        let mut writer = ArchiveWriter::new(archive, manifest, compression, mtime)?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut resource_list = ResourceList::default();
        let mut images = BTreeSet::new();
        while let Some(page) = pages.blocking_recv() {
            for object in page {
                let namespace = object.namespace.as_deref();
                writer.add_object(&object.group_resource, &object.version, namespace, &object.name, &object.json)?;
                *counts.entry(object.group_resource.to_string()).or_default() += 1;
                super::images::collect(&object.group_resource, &object.json, &mut images);
                resource_list.push(&object.type_key, namespace, &object.name);
            }
            bytes.store(writer.bytes_written(), Ordering::Relaxed);
        }
        let (archive, manifest, summary) = writer.finish()?;
        archive.finish()?;
        manifest.finish()?;
        bytes.store(summary.size, Ordering::Relaxed);
        Ok(SinkOutput { summary, counts, resource_list, images })
    })
}
