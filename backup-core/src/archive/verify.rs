//! Verifying an archive against its manifest, entry by entry, in one streaming pass over both (they list
//! entries in the same order), without restoring anything: sizes and SHA-256s, paths that escape, entries
//! over the size limit, and objects that are not what their path says.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::{
    ArchiveError, ItemPath, ManifestEntry, ManifestReader, check_entry, hex,
    reader::{Flow, ReadError, read_archive},
};
use cairn_api::Compression;

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

/// Counts and hashes the stored bytes as they are read, and remembers whether reading them failed.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    failed: Option<String>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), size: 0, failed: None }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            self.failed.get_or_insert_with(|| e.to_string());
        })?;
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

/// The manifest's next entry; `None` at its end or at a line that cannot be read (which is a problem).
fn next_expected(
    manifest: &mut ManifestReader<impl Read>,
    problems: &mut Problems,
) -> io::Result<Option<ManifestEntry>> {
    Ok(manifest.next_entry()?.unwrap_or_else(|problem| {
        problems.add("<manifest>", problem);
        None
    }))
}

/// Compares one archive entry with the manifest's next line, and checks that an object is what its path says.
fn check(path: &str, content: &[u8], lines: &mut ManifestReader<impl Read>, problems: &mut Problems) -> io::Result<()> {
    let size = content.len() as u64;
    let sha256 = hex(&Sha256::digest(content));
    match next_expected(lines, problems)? {
        None => problems.add(path, "in the archive but not in the manifest".into()),
        Some(expected) if expected.path != path => {
            problems.add(path, format!("found where the manifest lists {}", expected.path))
        }
        Some(expected) if expected.size != size || expected.sha256 != sha256 => problems.add(
            path,
            format!(
                "content differs from the manifest: {size} bytes with SHA-256 {sha256}, expected {} bytes with {}",
                expected.size, expected.sha256
            ),
        ),
        Some(_) => {}
    }
    if let Some(item) = ItemPath::parse(path)
        && let Err(problem) = check_entry(&item, content)
    {
        problems.add(path, format!("the object is not what its path says: {problem}"));
    }
    Ok(())
}

/// Reads the compressed `archive` and `manifest` and checks that every tar entry is listed, in order, with
/// its exact size and SHA-256, that nothing is missing or extra, that no path escapes the archive, that no
/// entry is over `max_entry_bytes`, and that every object is what its path says. A failed read of either
/// stream is an error ([`ArchiveError::Read`]), never a problem of the archive.
pub fn verify(
    archive: impl Read,
    manifest: impl Read,
    compression: Compression,
    max_entry_bytes: u64,
) -> Result<VerifyReport, ArchiveError> {
    let mut archive = HashingReader::new(archive);
    let mut manifest = HashingReader::new(manifest);
    let mut problems = Problems::default();
    let mut checked = 0u64;
    let read = {
        let mut lines = ManifestReader::new(&mut manifest)?;
        let read = read_archive(&mut archive, compression, max_entry_bytes, |mut entry| {
            checked += 1;
            let content = entry.read_all()?;
            check(entry.path, &content, &mut lines, &mut problems)?;
            Ok(if problems.full() { Flow::Stop } else { Flow::Continue })
        });
        let mut rest = Ok(());
        while read.is_ok() && !problems.full() {
            match next_expected(&mut lines, &mut problems) {
                Ok(Some(missing)) => problems.add(&missing.path, "in the manifest but missing from the archive".into()),
                Ok(None) => break,
                Err(error) => {
                    rest = Err(error);
                    break;
                }
            }
        }
        read.map(drop).map_err(ArchiveError::from).and(rest.map_err(ArchiveError::from))
    };
    if let Some(failure) = archive.failed.take().or_else(|| manifest.failed.take()) {
        return Err(ArchiveError::Read(ReadError::Store(failure)));
    }
    match read {
        Ok(()) => {}
        Err(ArchiveError::Read(problem @ (ReadError::TooLarge { .. } | ReadError::UnsafePath { .. }))) => {
            let path = match &problem {
                ReadError::TooLarge { path, .. } | ReadError::UnsafePath { path } => path.clone(),
                _ => unreachable!("matched above"),
            };
            problems.add(&path, problem.to_string());
        }
        Err(ArchiveError::Read(ReadError::Damaged(problem))) => {
            problems.add("<archive>", format!("truncated or corrupt after {checked} entries: {problem}"))
        }
        Err(ArchiveError::Io(error)) => {
            problems.add("<manifest>", format!("the manifest is truncated or corrupt: {error}"))
        }
        Err(other) => return Err(other),
    }
    // Read what is left so the hashes cover the whole objects, as stored.
    io::copy(&mut archive, &mut io::sink())?;
    io::copy(&mut manifest, &mut io::sink())?;
    if let Some(failure) = archive.failed.take().or_else(|| manifest.failed.take()) {
        return Err(ArchiveError::Read(ReadError::Store(failure)));
    }
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
    use crate::archive::testing::FailingAfter;
    use crate::archive::{ArchiveWriter, DEFAULT_MAX_ENTRY_BYTES};

    fn archive(compression: Compression, objects: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
        let mut writer = ArchiveWriter::new(Vec::new(), Vec::new(), compression, 0).unwrap();
        for (name, json) in objects {
            writer.add_object("configmaps", "v1", Some("ns"), name, json.as_bytes()).unwrap();
        }
        let (archive, manifest, summary) = writer.finish().unwrap();
        assert_eq!(summary.entries, 1 + 2 * objects.len() as u64);
        (archive, manifest)
    }

    fn config_map(name: &str, value: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"ns"}},"data":{{"v":"{value}"}}}}"#
        )
    }

    #[test]
    fn sound_archive_verifies_in_both_compressions() {
        for compression in [Compression::Zstd, Compression::Gzip] {
            let (archive, manifest) =
                archive(compression, &[("a", &config_map("a", "1")), ("b", &config_map("b", "2"))]);
            let report = verify(archive.as_slice(), manifest.as_slice(), compression, DEFAULT_MAX_ENTRY_BYTES).unwrap();
            assert_eq!(report.problems, vec![]);
            assert_eq!(report.entries_checked, 5);
            assert_eq!(report.archive_size, archive.len() as u64);
        }
    }

    #[test]
    fn changed_content_is_named() {
        let (plain, _) = archive(Compression::Gzip, &[("a", &config_map("a", "1"))]);
        let (_, manifest) = archive(Compression::Gzip, &[("a", &config_map("a", "2"))]);
        let report = verify(plain.as_slice(), manifest.as_slice(), Compression::Gzip, DEFAULT_MAX_ENTRY_BYTES).unwrap();
        assert_eq!(report.problems[0].path, "resources/configmaps/namespaces/ns/a.json");
        assert!(report.problems[0].problem.contains("content differs"));
    }

    #[test]
    fn truncated_archive_is_reported() {
        let (archive, manifest) =
            archive(Compression::Zstd, &[("a", &config_map("a", "1")), ("b", &config_map("b", "2"))]);
        let cut = &archive[..archive.len() / 2];
        let report = verify(cut, manifest.as_slice(), Compression::Zstd, DEFAULT_MAX_ENTRY_BYTES).unwrap();
        assert!(!report.problems.is_empty());
    }

    #[test]
    fn an_object_elsewhere_than_its_path_says_is_a_problem() {
        let smuggled = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"kube-system"}}"#;
        let (archive, manifest) = archive(Compression::Zstd, &[("a", smuggled)]);
        let report =
            verify(archive.as_slice(), manifest.as_slice(), Compression::Zstd, DEFAULT_MAX_ENTRY_BYTES).unwrap();
        assert_eq!(report.problems[0].path, "resources/configmaps/namespaces/ns/a.json");
        assert!(report.problems[0].problem.contains("kube-system"), "{:?}", report.problems);
    }

    #[test]
    fn an_entry_over_the_limit_is_a_problem() {
        let (archive, manifest) = archive(Compression::Zstd, &[("a", &config_map("a", &"x".repeat(5000)))]);
        let report = verify(archive.as_slice(), manifest.as_slice(), Compression::Zstd, 4096).unwrap();
        assert!(
            report.problems.iter().any(|p| p.problem.contains("over the limit of 4096 bytes")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_failed_read_is_an_error_not_a_problem() {
        let values: Vec<(String, String)> =
            (0..200).map(|i| (format!("c{i}"), config_map(&format!("c{i}"), &"v".repeat(500)))).collect();
        let objects: Vec<(&str, &str)> = values.iter().map(|(n, j)| (n.as_str(), j.as_str())).collect();
        let (archive, manifest) = archive(Compression::Gzip, &objects);
        let half = &archive[..archive.len() / 2];
        let error =
            verify(FailingAfter(half), manifest.as_slice(), Compression::Gzip, DEFAULT_MAX_ENTRY_BYTES).unwrap_err();
        assert!(matches!(error, ArchiveError::Read(ReadError::Store(_))), "{error}");
        assert!(error.to_string().contains("connection reset by peer"), "{error}");
    }
}
