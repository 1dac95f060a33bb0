//! Reading an archive: the one chain (stored bytes → decompression → tar entries) that verification and
//! restores share. It bounds what any entry may cost (an entry's size, a long name, an extension
//! header), refuses paths that escape the archive, and tells a failed read of the store (an outage: try
//! again) from bytes that are not a sound archive (damage).

use std::{
    io::{self, Read},
    sync::{Arc, Mutex},
};

use flate2::read::GzDecoder;
use tar::EntryType;

use super::path_is_safe;
use cairn_api::Compression;

/// The default cap on one archive entry: a little above the 3 MiB the API server takes in one request,
/// so no restorable object is refused and no archive can make a restore hold gigabytes.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 4 * 1024 * 1024;
/// The longest name a GNU long-name entry may carry (Linux's PATH_MAX).
const MAX_LONG_NAME: u64 = 4096;
/// The largest pax extension header read.
const MAX_PAX_HEADER: u64 = 64 * 1024;

/// Why an archive could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The store or the network failed mid-read: an outage, not damage. The archive may be sound.
    #[error(
        "reading the stored archive failed ({0}); the storage location or the network failed, not necessarily the backup: try again"
    )]
    Store(String),
    /// The bytes are not a sound archive.
    #[error("the archive is truncated or corrupt: {0}")]
    Damaged(String),
    /// An entry is larger than the limit.
    #[error(
        "archive entry {path} is {size} bytes, over the limit of {limit} bytes for one object; the archive was not written by a backup of a cluster (raise the limit only if you trust it)"
    )]
    TooLarge {
        /// The entry's path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An entry's path leaves the archive.
    #[error("the archive holds an entry whose path escapes it ({path:?})")]
    UnsafePath {
        /// The path.
        path: String,
    },
}

/// What the visitor of [`read_archive`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read on.
    Continue,
    /// Stop reading: the visitor has what it wants (or nobody listens any more).
    Stop,
}

/// One regular file of the archive, as the visitor sees it.
pub struct Entry<'r> {
    /// Its path.
    pub path: &'r str,
    /// Its size in bytes (at most the limit).
    pub size: u64,
    /// Its content; what the visitor leaves unread is skipped.
    pub content: &'r mut dyn Read,
}

impl Entry<'_> {
    /// Reads the whole content (bounded by the size, itself bounded by the limit).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut content = Vec::with_capacity(self.size as usize);
        self.content.take(self.size).read_to_end(&mut content)?;
        Ok(content)
    }
}

/// Remembers the first error of the stored byte stream, so an error seen higher up the chain (by the
/// decompressor or the tar reader) can be told to come from the store.
struct Tracked<R> {
    inner: R,
    failure: Arc<Mutex<Option<String>>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|error| {
            self.failure.lock().expect("failure lock").get_or_insert_with(|| error.to_string());
        })
    }
}

/// Reads the archive in `raw` (compressed as `compression`) entry by entry, calling `visit` for each regular
/// file in order. Returns the number of entries visited. Entries over `max_entry_bytes`, long names and
/// extension headers past their bounds, and unsafe paths end the read with an error before anything of
/// them is held in memory.
pub fn read_archive(
    raw: impl Read,
    compression: Compression,
    max_entry_bytes: u64,
    mut visit: impl FnMut(Entry<'_>) -> io::Result<Flow>,
) -> Result<u64, ReadError> {
    let failure = Arc::new(Mutex::new(None));
    let tracked = Tracked { inner: raw, failure: failure.clone() };
    let classify = |error: io::Error| match failure.lock().expect("failure lock").clone() {
        Some(store) => ReadError::Store(store),
        None => ReadError::Damaged(error.to_string()),
    };
    let decompressed: Box<dyn Read> = match compression {
        Compression::Zstd => Box::new(zstd::Decoder::new(tracked).map_err(&classify)?),
        Compression::Gzip => Box::new(GzDecoder::new(tracked)),
    };
    let mut archive = tar::Archive::new(decompressed);
    // Raw entries: the tar crate would read long names and pax headers whole, whatever their size.
    let entries = archive.entries().map_err(&classify)?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut visited = 0;
    for entry in entries {
        let mut entry = entry.map_err(&classify)?;
        let size = entry.header().entry_size().map_err(&classify)?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() {
            if size > MAX_LONG_NAME {
                return Err(ReadError::Damaged(format!("a long name of {size} bytes (at most {MAX_LONG_NAME})")));
            }
            let mut name = Vec::with_capacity(size as usize);
            (&mut entry).take(size).read_to_end(&mut name).map_err(&classify)?;
            while name.last() == Some(&0) {
                name.pop();
            }
            long_name = Some(name);
            continue;
        }
        if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() || kind.is_gnu_longlink() {
            if size > MAX_PAX_HEADER {
                return Err(ReadError::Damaged(format!(
                    "an extension header of {size} bytes (at most {MAX_PAX_HEADER})"
                )));
            }
            let mut header = Vec::with_capacity(size as usize);
            (&mut entry).take(size).read_to_end(&mut header).map_err(&classify)?;
            if kind.is_pax_local_extensions()
                && let Some(path) = pax_path(&header).map_err(ReadError::Damaged)?
            {
                long_name = Some(path);
            }
            continue;
        }
        let path_bytes = long_name.take().unwrap_or_else(|| entry.path_bytes().into_owned());
        let path = String::from_utf8_lossy(&path_bytes).into_owned();
        if !path_is_safe(&path) {
            return Err(ReadError::UnsafePath { path });
        }
        if !matches!(kind, EntryType::Regular | EntryType::Continuous) {
            if kind == EntryType::Directory {
                continue;
            }
            return Err(ReadError::Damaged(format!("entry {path} is not a regular file ({kind:?})")));
        }
        if size > max_entry_bytes {
            return Err(ReadError::TooLarge { path, size, limit: max_entry_bytes });
        }
        visited += 1;
        if visit(Entry { path: &path, size, content: &mut entry }).map_err(&classify)? == Flow::Stop {
            return Ok(visited);
        }
    }
    Ok(visited)
}

/// The `path` record of a pax extension header, if it has one. A `size` record is refused: entries over
/// 8 GiB are far past any limit, and honouring it would need the tar reader's own pax handling.
fn pax_path(header: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut path = None;
    for extension in tar::PaxExtensions::new(header) {
        let extension = extension.map_err(|e| format!("an unreadable pax header ({e})"))?;
        match extension.key_bytes() {
            b"path" => path = Some(extension.value_bytes().to_vec()),
            b"size" => return Err("a pax header that sets the size of an entry".into()),
            _ => {}
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::testing::FailingAfter;

    fn tar_with(entries: &[(&str, &[u8])], compression: Compression) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, *content).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        match compression {
            Compression::Zstd => zstd::encode_all(tar.as_slice(), 3).unwrap(),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                io::Write::write_all(&mut encoder, &tar).unwrap();
                encoder.finish().unwrap()
            }
        }
    }

    fn paths(archive: &[u8], compression: Compression, limit: u64) -> Result<Vec<(String, Vec<u8>)>, ReadError> {
        let mut seen = Vec::new();
        read_archive(archive, compression, limit, |mut entry| {
            seen.push((entry.path.to_owned(), entry.read_all()?));
            Ok(Flow::Continue)
        })?;
        Ok(seen)
    }

    #[test]
    fn entries_come_in_order_with_long_names() {
        let long = format!("resources/configmaps/namespaces/a/{}.json", "x".repeat(200));
        for compression in [Compression::Zstd, Compression::Gzip] {
            let archive = tar_with(&[("metadata/version", b"1.1.0\n"), (long.as_str(), b"{}")], compression);
            let seen = paths(&archive, compression, 1024).unwrap();
            assert_eq!(seen, vec![("metadata/version".into(), b"1.1.0\n".to_vec()), (long.clone(), b"{}".to_vec())]);
        }
    }

    /// A pax record `"<len> key=value\n"`, its length counting itself.
    fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}").into_bytes()
    }

    #[test]
    fn a_pax_path_names_the_next_entry_as_go_writes_long_names() {
        let long = format!("resources/configmaps/namespaces/ns/{}.json", "y".repeat(150));
        let mut builder = tar::Builder::new(Vec::new());
        let record = pax_record("path", &long);
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(EntryType::XHeader);
        pax.set_path("PaxHeaders/x").unwrap();
        pax.set_size(record.len() as u64);
        pax.set_cksum();
        builder.append(&pax, record.as_slice()).unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_path("resources/configmaps/namespaces/ns/truncated.json").unwrap();
        file.set_size(2);
        file.set_cksum();
        builder.append(&file, b"{}".as_slice()).unwrap();
        let archive = zstd::encode_all(builder.into_inner().unwrap().as_slice(), 3).unwrap();
        assert_eq!(paths(&archive, Compression::Zstd, 1024).unwrap(), vec![(long, b"{}".to_vec())]);
    }

    #[test]
    fn an_entry_over_the_limit_is_refused_before_it_is_read() {
        let archive = tar_with(&[("resources/configmaps/namespaces/a/big.json", &[b' '; 2048])], Compression::Zstd);
        let error = paths(&archive, Compression::Zstd, 1024).unwrap_err();
        assert_eq!(
            error,
            ReadError::TooLarge { path: "resources/configmaps/namespaces/a/big.json".into(), size: 2048, limit: 1024 }
        );
    }

    #[test]
    fn a_huge_long_name_is_refused() {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::GNULongName);
        header.set_size(1 << 30);
        header.set_path("././@LongLink").unwrap();
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(&[b'a'; 4096]);
        let archive = zstd::encode_all(tar.as_slice(), 3).unwrap();
        assert!(
            matches!(paths(&archive, Compression::Zstd, 1024), Err(ReadError::Damaged(m)) if m.contains("long name"))
        );
    }

    #[test]
    fn a_failing_store_is_an_outage_and_bad_bytes_are_damage() {
        let archive = tar_with(&[("resources/configmaps/namespaces/a/c.json", &[b'x'; 100_000])], Compression::Gzip);
        let half = &archive[..archive.len() / 2];
        let failed =
            read_archive(FailingAfter(half), Compression::Gzip, 1 << 20, |mut e| e.read_all().map(|_| Flow::Continue));
        assert!(matches!(failed, Err(ReadError::Store(m)) if m.contains("connection reset by peer")));
        let truncated = read_archive(half, Compression::Gzip, 1 << 20, |mut e| e.read_all().map(|_| Flow::Continue));
        assert!(matches!(truncated, Err(ReadError::Damaged(_))), "{truncated:?}");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.as_gnu_mut().unwrap().name[..16].copy_from_slice(b"../../etc/passwd");
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(&[b'{'; 512]);
        tar.extend_from_slice(&[0; 1024]);
        let archive = zstd::encode_all(tar.as_slice(), 3).unwrap();
        assert!(matches!(paths(&archive, Compression::Zstd, 1024), Err(ReadError::UnsafePath { .. })));
    }
}
