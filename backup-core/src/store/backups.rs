//! Reading and writing a location's objects: streamed uploads, compressed side files, JSON, listing and
//! deletion of a backup's keys, and errors that name the problem. Keys come from [`Layout`].

use std::io::Write;

use bytes::Bytes;
use flate2::{Compression as GzLevel, write::GzEncoder};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode, PutOptions, path::Path};
use serde::{Serialize, de::DeserializeOwned};

use super::{Layout, PartWriter, Store, StoreError};

/// Writes `value` as gzip-compressed JSON into `out` (memory, or a [`PartWriter`] for a side file too large to
/// hold) and returns it. Through a buffer: flate2 clears its output space on every write, and serde writes a
/// few bytes at a time (a restore's results were 6% of its CPU before this).
pub(crate) fn write_gzip_json<W: Write>(out: W, value: &impl Serialize) -> std::io::Result<W> {
    let mut encoder = GzEncoder::new(out, GzLevel::default());
    let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, &mut encoder);
    serde_json::to_writer(&mut buffered, value)?;
    buffered.flush()?;
    drop(buffered);
    encoder.finish()
}

/// Deletions in flight at once.
const DELETE_CONCURRENCY: usize = 8;

impl Store {
    /// Turns an object-store error into one that names the location, the problem and the fix.
    pub fn explain(&self, key: &Path, error: object_store::Error) -> StoreError {
        let location = self.location().to_string();
        let text = error.to_string();
        let (problem, fix) = match &error {
            object_store::Error::NotFound { .. } => return StoreError::NotFound { key: key.to_string(), location },
            object_store::Error::AlreadyExists { .. } => {
                return StoreError::AlreadyExists { key: key.to_string(), location };
            }
            object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. } => {
                ("access was denied", "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE)")
            }
            _ if text.contains("NoSuchBucket") => ("the bucket does not exist", "create the bucket or fix the URL"),
            _ if text.contains("SignatureDoesNotMatch") || text.contains("InvalidAccessKeyId") => {
                ("the credentials were refused", "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            }
            _ if text.contains("error sending request") || text.contains("connect") => {
                ("the server cannot be reached", "check the endpoint and that the server is running")
            }
            _ => ("the request failed", "check the location and the server"),
        };
        StoreError::Access { location, problem, fix, cause: cairn_kube::cause::chain_text(&error) }
    }

    /// Checks that the location answers (bucket present, credentials accepted) by listing its backups folder:
    /// the first page only, one request however many backups it holds.
    pub async fn check_reachable(&self) -> Result<(), StoreError> {
        let dir = Layout.backups_dir();
        match self.objects().list(Some(&dir)).next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.explain(&dir, e)),
        }
    }

    /// A streamed upload to `key` for a blocking thread, holding at most one part in memory
    /// ([`PartWriter`]): `finish` completes it, `abort` cancels it.
    pub fn upload(&self, key: &Path) -> PartWriter {
        PartWriter::new(self.objects().clone(), key.clone(), tokio::runtime::Handle::current())
    }

    /// Writes `value` as JSON only if `key` does not exist yet: nothing stored is ever overwritten
    /// ([`StoreError::AlreadyExists`] otherwise).
    pub async fn create_json<T: Serialize>(&self, key: &Path, value: &T) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(value).expect("records serialize");
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.objects().put_opts(key, body.into(), options).await.map(drop).map_err(|e| self.explain(key, e))
    }

    /// Writes `value` as gzip-compressed JSON.
    pub async fn put_gzip_json<T: Serialize>(&self, key: &Path, value: &T) -> Result<(), StoreError> {
        let body = write_gzip_json(Vec::new(), value).expect("side files serialize into memory");
        self.objects().put(key, body.into()).await.map(drop).map_err(|e| self.explain(key, e))
    }

    /// Writes gzip-compressed text.
    pub async fn put_gzip_text(&self, key: &Path, text: &str) -> Result<(), StoreError> {
        let mut encoder = GzEncoder::new(Vec::new(), GzLevel::default());
        encoder.write_all(text.as_bytes()).expect("writing to memory cannot fail");
        let body = encoder.finish().expect("writing to memory cannot fail");
        self.objects().put(key, body.into()).await.map(drop).map_err(|e| self.explain(key, e))
    }

    /// Reads a whole object (for small files: records, side files).
    pub async fn get_bytes(&self, key: &Path) -> Result<Bytes, StoreError> {
        let result = self.objects().get(key).await.map_err(|e| self.explain(key, e))?;
        result.bytes().await.map_err(|e| self.explain(key, e))
    }

    /// Reads and parses a JSON object.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &Path) -> Result<T, StoreError> {
        let bytes = self.get_bytes(key).await?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt { key: key.to_string(), problem: e.to_string() })
    }

    /// Reads and parses a gzip-compressed JSON object.
    pub async fn get_gzip_json<T: DeserializeOwned>(&self, key: &Path) -> Result<T, StoreError> {
        let bytes = self.get_bytes(key).await?;
        serde_json::from_reader(flate2::read::GzDecoder::new(bytes.as_ref()))
            .map_err(|e| StoreError::Corrupt { key: key.to_string(), problem: e.to_string() })
    }

    /// Reads a gzip-compressed text object.
    pub async fn get_gzip_text(&self, key: &Path) -> Result<String, StoreError> {
        let bytes = self.get_bytes(key).await?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes.as_ref()), &mut text)
            .map_err(|e| StoreError::Corrupt { key: key.to_string(), problem: e.to_string() })?;
        Ok(text)
    }

    /// An object's content as a stream of chunks.
    pub async fn get_stream(
        &self,
        key: &Path,
    ) -> Result<impl futures::Stream<Item = Result<Bytes, std::io::Error>> + use<>, StoreError> {
        let result = self.objects().get(key).await.map_err(|e| self.explain(key, e))?;
        Ok(result.into_stream().map_err(std::io::Error::other))
    }

    /// Writes `bytes` at `key` (a key from [`Layout`]), replacing whatever is there. Cairn itself never
    /// overwrites (records are create-only, data keys unique per attempt): this is for tools and tests that
    /// plant or damage files on purpose.
    pub async fn overwrite(&self, key: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.objects().put(key, bytes.into()).await.map(drop).map_err(|e| self.explain(key, e))
    }

    /// Every key of the location with its size, in listing order: for inventories and for checks that
    /// nothing was written.
    pub async fn inventory(&self) -> Result<Vec<(Path, u64)>, StoreError> {
        self.objects()
            .list(None)
            .map_ok(|meta| (meta.location, meta.size))
            .try_collect()
            .await
            .map_err(|e| self.explain(&Path::default(), e))
    }

    /// Deletes the given keys (missing ones are fine).
    pub async fn delete_keys(&self, keys: &[Path]) -> Result<(), StoreError> {
        futures::stream::iter(keys.iter().cloned())
            .map(|key| async move {
                match self.objects().delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.explain(&key, e)),
                }
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Deletes everything stored for backup `name`, the record first (a backup exists only while its record
    /// does, so a deletion that stops midway leaves leftovers, never a backup with missing data), and returns
    /// how many keys went.
    pub async fn delete_backup(&self, name: &str) -> Result<usize, StoreError> {
        let record = Layout.backup_record(name);
        let keys = self.keys_under(&Layout.backup_dir(name)).await?;
        let (records, data): (Vec<Path>, Vec<Path>) = keys.into_iter().partition(|k| *k == record);
        self.delete_keys(&records).await?;
        self.delete_keys(&data).await?;
        Ok(data.len() + records.len())
    }

    /// Every key under the folder `dir`.
    async fn keys_under(&self, dir: &Path) -> Result<Vec<Path>, StoreError> {
        self.objects()
            .list(Some(dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| self.explain(dir, e))
    }

    /// Deletes everything stored for restore `name` and returns how many keys went.
    pub async fn delete_restore(&self, name: &str) -> Result<usize, StoreError> {
        let keys = self.keys_under(&Layout.restore_dir(name)).await?;
        self.delete_keys(&keys).await?;
        Ok(keys.len())
    }

    /// A URL from which `key` can be downloaded without credentials until `expires_in` has passed: presigned on
    /// S3, a `file://` URL for a local location (readable by whoever shares the file system).
    pub async fn download_url(&self, key: &Path, expires_in: std::time::Duration) -> Result<String, StoreError> {
        self.objects().head(key).await.map_err(|e| self.explain(key, e))?;
        match (&self.signer, &self.location) {
            (Some(signer), _) => {
                use object_store::signer::Signer as _;
                let full = if signer.prefix.is_empty() {
                    key.clone()
                } else {
                    Path::from_iter(Path::from(signer.prefix.as_str()).parts().chain(key.parts()))
                };
                let url = signer
                    .s3
                    .signed_url(http::Method::GET, &full, expires_in)
                    .await
                    .map_err(|e| self.explain(key, e))?;
                Ok(url.to_string())
            }
            (None, super::Location::Local { root }) => {
                let path = root.join(key.as_ref());
                Ok(url::Url::from_file_path(&path)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|()| path.display().to_string()))
            }
            (None, location) => Err(StoreError::NotFound { key: key.to_string(), location: location.to_string() }),
        }
    }
}
