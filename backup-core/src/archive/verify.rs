//! Verifying an archive against its manifest, entry by entry, in one streaming pass over both (they list
//! entries in the same order), without restoring anything.

use std::io::{self, BufRead, BufReader, Read};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::{ArchiveError, ManifestEntry, hex, path_is_safe};
use crate::store::Compression;

/// Stop listing problems after this many; the archive is bad either way.
const MAX_PROBLEMS: usize = 50;

/// One entry that does not match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyProblem {
    /// The entry's path (or `<archive>` for the stream as a whole).
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Entries read from the archive.
    pub entries_checked: u64,
    /// Compressed archive bytes read.
    pub archive_size: u64,
    /// SHA-256 of the compressed archive as read.
    pub archive_sha256: String,
    /// SHA-256 of the compressed manifest as read.
    pub manifest_sha256: String,
    /// Everything that did not match; empty for a sound archive.
    pub problems: Vec<VerifyProblem>,
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Problems found so far, capped at [`MAX_PROBLEMS`].
#[derive(Default)]
struct Problems(Vec<VerifyProblem>);

impl Problems {
    fn add(&mut self, path: &str, problem: String) {
        self.0.push(VerifyProblem { path: path.to_owned(), problem });
    }

    fn full(&self) -> bool {
        self.0.len() >= MAX_PROBLEMS
    }
}

/// The next manifest entry, or `None` at its end (or at an unreadable line, which is a problem).
fn next_expected(
    lines: &mut impl Iterator<Item = (usize, io::Result<String>)>,
    problems: &mut Problems,
) -> Option<ManifestEntry> {
    let (index, line) = lines.next()?;
    match line.map_err(|e| e.to_string()).and_then(|l| serde_json::from_str(&l).map_err(|e| e.to_string())) {
        Ok(entry) => Some(entry),
        Err(e) => {
            problems.add("<manifest>", format!("line {} is unreadable: {e}", index + 1));
            None
        }
    }
}

/// Reads the compressed `archive` and `manifest` and checks that every tar entry is listed, in order, with
/// its exact size and SHA-256, that nothing is missing or extra, and that no path escapes the archive.
pub fn verify(archive: impl Read, manifest: impl Read, compression: Compression) -> Result<VerifyReport, ArchiveError> {
    let mut archive = HashingReader { inner: archive, hasher: Sha256::new(), size: 0 };
    let mut manifest = HashingReader { inner: manifest, hasher: Sha256::new(), size: 0 };
    let mut problems = Problems::default();
    let mut checked = 0u64;
    {
        let mut lines = BufReader::new(zstd::Decoder::new(&mut manifest)?).lines().enumerate();
        let decompressed: Box<dyn Read + '_> = match compression {
            Compression::Zstd => Box::new(zstd::Decoder::new(&mut archive)?),
            Compression::Gzip => Box::new(GzDecoder::new(&mut archive)),
        };
        let mut tar = tar::Archive::new(decompressed);
        match tar.entries() {
            Err(e) => problems.add("<archive>", format!("not a readable tar stream: {e}")),
            Ok(entries) => {
                for entry in entries {
                    let mut entry = match entry {
                        Ok(entry) => entry,
                        Err(e) => {
                            problems.add("<archive>", format!("truncated or corrupt after {checked} entries: {e}"));
                            break;
                        }
                    };
                    let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                    checked += 1;
                    if !path_is_safe(&path) {
                        problems.add(&path, "the path escapes the archive (absolute or with ..)".into());
                    }
                    let mut hasher = Sha256::new();
                    let size = match io::copy(&mut entry, &mut hasher) {
                        Ok(size) => size,
                        Err(e) => {
                            problems.add(&path, format!("truncated or unreadable: {e}"));
                            break;
                        }
                    };
                    let sha256 = hex(&hasher.finalize());
                    match next_expected(&mut lines, &mut problems) {
                        None => problems.add(&path, "in the archive but not in the manifest".into()),
                        Some(expected) if expected.path != path => {
                            problems.add(&path, format!("found where the manifest lists {}", expected.path))
                        }
                        Some(expected) if expected.size != size || expected.sha256 != sha256 => problems.add(
                            &path,
                            format!(
                                "content differs from the manifest: {size} bytes with SHA-256 {sha256}, expected {} bytes with {}",
                                expected.size, expected.sha256
                            ),
                        ),
                        Some(_) => {}
                    }
                    if problems.full() {
                        break;
                    }
                }
            }
        }
        while !problems.full() {
            let Some(missing) = next_expected(&mut lines, &mut problems) else { break };
            problems.add(&missing.path, "in the manifest but missing from the archive".into());
        }
    }
    // Read what is left so the hashes cover the whole objects, as stored.
    io::copy(&mut archive, &mut io::sink())?;
    io::copy(&mut manifest, &mut io::sink())?;
    Ok(VerifyReport {
        entries_checked: checked,
        archive_size: archive.size,
        archive_sha256: hex(&archive.hasher.finalize()),
        manifest_sha256: hex(&manifest.hasher.finalize()),
        problems: problems.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveWriter;

    fn archive(compression: Compression, objects: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
        let mut writer = ArchiveWriter::new(Vec::new(), Vec::new(), compression, 0).unwrap();
        for (name, json) in objects {
            writer.add_object("configmaps", "v1", Some("ns"), name, json.as_bytes()).unwrap();
        }
        let (archive, manifest, summary) = writer.finish().unwrap();
        assert_eq!(summary.entries, 1 + 2 * objects.len() as u64);
        (archive, manifest)
    }

    #[test]
    fn sound_archive_verifies_in_both_compressions() {
        for compression in [Compression::Zstd, Compression::Gzip] {
            let (archive, manifest) = archive(compression, &[("a", "{\"a\":1}"), ("b", "{}")]);
            let report = verify(archive.as_slice(), manifest.as_slice(), compression).unwrap();
            assert_eq!(report.problems, vec![]);
            assert_eq!(report.entries_checked, 5);
            assert_eq!(report.archive_size, archive.len() as u64);
        }
    }

    #[test]
    fn changed_content_is_named() {
        let (plain, _) = archive(Compression::Gzip, &[("a", "{\"v\":1}")]);
        let (_, manifest) = archive(Compression::Gzip, &[("a", "{\"v\":2}")]);
        let report = verify(plain.as_slice(), manifest.as_slice(), Compression::Gzip).unwrap();
        assert_eq!(report.problems[0].path, "resources/configmaps/namespaces/ns/a.json");
        assert!(report.problems[0].problem.contains("content differs"));
    }

    #[test]
    fn truncated_archive_is_reported() {
        let (archive, manifest) = archive(Compression::Zstd, &[("a", "{\"a\":1}"), ("b", "{\"b\":2}")]);
        let cut = &archive[..archive.len() / 2];
        let report = verify(cut, manifest.as_slice(), Compression::Zstd).unwrap();
        assert!(!report.problems.is_empty());
    }
}
