//! The manifest beside an archive: one JSON line per tar entry (path, size, SHA-256), zstd-compressed.
//! Read line by line with each line bounded, so a crafted manifest cannot make a reader hold gigabytes.

use std::io::{self, BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};

/// The longest manifest line read (a path and two numbers; object paths are far shorter).
const MAX_LINE: u64 = 16 * 1024;

/// One archive entry as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The entry's path in the tar.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content, lowercase hex.
    pub sha256: String,
}

/// A manifest's entries, read from its compressed bytes one bounded line at a time.
pub struct ManifestReader<R: Read> {
    lines: BufReader<zstd::Decoder<'static, BufReader<R>>>,
    line: usize,
}

impl<R: Read> ManifestReader<R> {
    /// Starts reading the compressed manifest in `compressed`.
    pub fn new(compressed: R) -> io::Result<Self> {
        Ok(ManifestReader { lines: BufReader::new(zstd::Decoder::new(compressed)?), line: 0 })
    }

    /// The next entry, `Ok(None)` at the end; a line that is too long or unreadable is an `Err` naming
    /// it, a failed read of the underlying bytes an I/O error.
    pub fn next_entry(&mut self) -> io::Result<Result<Option<ManifestEntry>, String>> {
        let mut line = Vec::new();
        (&mut self.lines).take(MAX_LINE).read_until(b'\n', &mut line)?;
        self.line += 1;
        if line.is_empty() {
            return Ok(Ok(None));
        }
        if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_LINE {
            return Ok(Err(format!("line {} is longer than {MAX_LINE} bytes", self.line)));
        }
        Ok(serde_json::from_slice(&line).map(Some).map_err(|e| format!("line {} is unreadable: {e}", self.line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_in_order_and_a_huge_line_is_refused() {
        let entry = ManifestEntry { path: "a".into(), size: 1, sha256: "00".into() };
        let text = format!("{}\n{}\n", serde_json::to_string(&entry).unwrap(), "x".repeat(100_000));
        let compressed = zstd::encode_all(text.as_bytes(), 3).unwrap();
        let mut reader = ManifestReader::new(compressed.as_slice()).unwrap();
        assert_eq!(reader.next_entry().unwrap(), Ok(Some(entry)));
        assert!(reader.next_entry().unwrap().unwrap_err().contains("longer than"));
    }
}
