//! Reading a stored backup's archive whole, for assertions (tests only: it holds everything in memory).

use cairn_api::Compression;
use std::io::Read;

use backup_core::{
    backup::{BackupRecord, backup_keys},
    store::Store,
};

/// Every entry of the backup's archive, in order: (path, content).
pub async fn archive_entries(store: &Store, record: &BackupRecord) -> Vec<(String, Vec<u8>)> {
    let bytes = store.get_bytes(&backup_keys(record).archive).await.expect("the archive is readable");
    let reader: Box<dyn Read> = match record.compression() {
        Compression::Zstd => Box::new(zstd::Decoder::new(bytes.as_ref()).expect("zstd stream")),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(bytes.as_ref())),
    };
    let mut archive = tar::Archive::new(reader);
    let mut entries = Vec::new();
    for entry in archive.entries().expect("a tar stream") {
        let mut entry = entry.expect("a tar entry");
        let path = entry.path().expect("a path").to_string_lossy().into_owned();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("entry content");
        entries.push((path, content));
    }
    entries
}
