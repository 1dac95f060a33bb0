//! Writing an archive: tar entries streamed through the compressor into any `Write`, with the manifest
//! streamed beside it. Nothing is buffered beyond the compressors' windows.

use std::io::{self, Write};

use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::{FORMAT_VERSION, ManifestEntry, VERSION_PATH, hex, item_path, preferred_version_path};
use cairn_api::Compression;

/// zstd level 1: on the benchmark's objects (113,000 ConfigMaps, Secrets and workloads, each twice) it
/// compressed 2.6 times faster than level 3 (446 against 169 MB/s on this machine) to the same size (6.14
/// against 6.11 times smaller); on two cores shared with the API server, the compressor's time is the
/// backup's time.
const ZSTD_LEVEL: i32 = 1;
/// The manifest compressor's window: 2^17 bytes.
const MANIFEST_WINDOW_LOG: u32 = 17;

/// What a finished archive amounts to; recorded so the stored bytes can be checked later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSummary {
    /// Compressed archive size in bytes.
    pub size: u64,
    /// SHA-256 of the compressed archive.
    pub sha256: String,
    /// Number of tar entries (the version entry, each object and each preferred-version copy).
    pub entries: u64,
    /// Compressed manifest size in bytes.
    pub manifest_size: u64,
    /// SHA-256 of the compressed manifest.
    pub manifest_sha256: String,
}

/// Counts and hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, hasher: Sha256::new(), size: 0 }
    }
}

enum Compressor<W: Write> {
    Zstd(zstd::Encoder<'static, W>),
    Gzip(GzEncoder<W>),
}

impl<W: Write> Compressor<W> {
    fn new(inner: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::Zstd => Compressor::Zstd(zstd::Encoder::new(inner, ZSTD_LEVEL)?),
            Compression::Gzip => Compressor::Gzip(GzEncoder::new(inner, flate2::Compression::default())),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Zstd(encoder) => encoder.finish(),
            Compressor::Gzip(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Zstd(e) => e.write(buf),
            Compressor::Gzip(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Zstd(e) => e.flush(),
            Compressor::Gzip(e) => e.flush(),
        }
    }
}

/// Streams objects into a compressed tar and their manifest lines into a zstd-compressed manifest.
pub struct ArchiveWriter<A: Write, M: Write> {
    tar: tar::Builder<Compressor<Hashing<A>>>,
    manifest: zstd::Encoder<'static, Hashing<M>>,
    entries: u64,
    mtime: u64,
}

impl<A: Write, M: Write> ArchiveWriter<A, M> {
    /// Starts an archive in `archive` and its manifest in `manifest`, and writes the version entry.
    /// `mtime` (seconds since the epoch) stamps every entry.
    pub fn new(archive: A, manifest: M, compression: Compression, mtime: u64) -> io::Result<Self> {
        let tar = tar::Builder::new(Compressor::new(Hashing::new(archive), compression)?);
        let mut manifest = zstd::Encoder::new(Hashing::new(manifest), ZSTD_LEVEL)?;
        // Lines repeat within a few kilobytes (paths of one type and namespace; checksums never repeat): a
        // 128 KiB window compresses them as well as a larger one, in less memory.
        manifest.window_log(MANIFEST_WINDOW_LOG)?;
        let mut writer = ArchiveWriter { tar, manifest, entries: 0, mtime };
        writer.append(VERSION_PATH, format!("{FORMAT_VERSION}\n").as_bytes())?;
        Ok(writer)
    }

    /// Adds one object (compact JSON) and its preferred-version copy.
    pub fn add_object(
        &mut self,
        group_resource: &str,
        version: &str,
        namespace: Option<&str>,
        name: &str,
        json: &[u8],
    ) -> io::Result<()> {
        // Both entries hold the same bytes: hash them once.
        let sha256 = hex(&Sha256::digest(json));
        self.append_hashed(&item_path(group_resource, namespace, name), json, &sha256)?;
        self.append_hashed(&preferred_version_path(group_resource, version, namespace, name), json, &sha256)
    }

    fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        self.append_hashed(path, data, &hex(&Sha256::digest(data)))
    }

    fn append_hashed(&mut self, path: &str, data: &[u8], sha256: &str) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, path, data)?;
        let entry = ManifestEntry { path: path.to_owned(), size: data.len() as u64, sha256: sha256.to_owned() };
        serde_json::to_writer(&mut self.manifest, &entry)?;
        self.manifest.write_all(b"\n")?;
        self.entries += 1;
        Ok(())
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Compressed archive bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        match self.tar.get_ref() {
            Compressor::Zstd(e) => e.get_ref().size,
            Compressor::Gzip(e) => e.get_ref().size,
        }
    }

    /// Ends the tar and both compressed streams, flushes them, and returns the sinks and the summary.
    pub fn finish(self) -> io::Result<(A, M, ArchiveSummary)> {
        let compressor = self.tar.into_inner()?;
        let mut archive = compressor.finish()?;
        archive.flush()?;
        let mut manifest = self.manifest.finish()?;
        manifest.flush()?;
        let summary = ArchiveSummary {
            size: archive.size,
            sha256: hex(&archive.hasher.finalize()),
            entries: self.entries,
            manifest_size: manifest.size,
            manifest_sha256: hex(&manifest.hasher.finalize()),
        };
        Ok((archive.inner, manifest.inner, summary))
    }
}
