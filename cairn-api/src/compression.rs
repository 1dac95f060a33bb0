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
