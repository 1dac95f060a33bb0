//! How a backup's archive is compressed: part of a Backup's spec and of its stored record.

/// How an archive is compressed; decides its key's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// tar + zstd, the default.
    Zstd,
    /// tar + gzip, Velero's format.
    Gzip,
}

impl Compression {
    /// The archive's file extension: `tar.zst` or `tar.gz`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tar.zst",
            Compression::Gzip => "tar.gz",
        }
    }
}

/// Which bucket layouts a backup is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupFormat {
    /// Cairn's only (`cairn-backup.json`, run-stamped files, a checksum manifest).
    #[default]
    Cairn,
    /// Cairn's, and Velero's as well (`velero-backup.json`, `<name>.tar.gz` and its side files), so that a
    /// Velero server pointed at the bucket syncs and restores it. Needs gzip compression.
    Velero,
}
