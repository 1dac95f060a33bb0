//! The archive: a tar of one JSON file per object in Velero's layout (`paths.rs` spells and parses its
//! paths), compressed with zstd (or gzip, Velero's own format), and a manifest that lists every entry with
//! its size and SHA-256 so a backup can be verified without restoring it. `writer.rs` writes it;
//! `reader.rs` is the one way to read it (bounded, telling outages from damage); `verify.rs` checks it;
//! `resource_list.rs` keeps the resource lists written beside backups and restores; `order.rs` is the order
//! objects are restored in, which backups write them in too.

mod manifest;
pub mod order;
mod paths;
mod reader;
mod resource_list;
mod verify;
mod writer;

pub use manifest::{ManifestEntry, ManifestReader};
pub use paths::{
    IdentityMeta, ItemPath, ObjectIdentity, VERSION_PATH, check_entry, item_path, path_is_safe, preferred_version_path,
};
pub use reader::{DEFAULT_MAX_ENTRY_BYTES, Entry, Flow, ReadError, read_archive};
pub(crate) use resource_list::ResourceList;
pub use verify::{VerifyProblem, VerifyReport, verify};
pub use writer::{ArchiveSummary, ArchiveWriter};

/// The archive format version written to `metadata/version` (Velero's current one).
pub const FORMAT_VERSION: &str = "1.1.0";

/// Archive errors.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing the archive failed.
    #[error("archive I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The stored archive could not be read to its end.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A manifest line could not be read.
    #[error("the manifest is corrupt at line {line}: {problem}")]
    Manifest {
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    text
}

/// The 32 bytes a 64-digit hex SHA-256 spells, or `None` when it spells none.
pub fn sha256_of_hex(text: &str) -> Option<[u8; 32]> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        bytes[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

/// Readers for the tests of this module.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{self, Read};

    /// Reads `0`, then fails as a dropped connection would: a store that fails mid-read.
    pub(crate) struct FailingAfter<'a>(pub(crate) &'a [u8]);

    impl Read for FailingAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("connection reset by peer"));
            }
            self.0.read(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn a_hex_checksum_reads_back_as_its_bytes_and_anything_else_is_refused() {
        let digest: [u8; 32] = Sha256::digest(b"cairn").into();
        assert_eq!(sha256_of_hex(&hex(&digest)), Some(digest));
        assert_eq!(sha256_of_hex(&hex(&digest).to_uppercase()), Some(digest));
        assert_eq!(sha256_of_hex(&hex(&digest)[..62]), None);
        assert_eq!(sha256_of_hex(&"g".repeat(64)), None);
        assert_eq!(sha256_of_hex(&"é".repeat(32)), None);
    }
}
