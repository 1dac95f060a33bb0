//! Storage location URLs (`s3://bucket/prefix?endpoint=..&region=..`, `file:///path`) and opening them.

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use object_store::{ObjectStore, RetryConfig, aws::AmazonS3Builder, local::LocalFileSystem, prefix::PrefixStore};
use url::Url;

use super::{Store, StoreError};

const URL_FORMS: &str = "use s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION] or file:///ABSOLUTE/PATH";

/// Where backups are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A bucket (and optional prefix) in AWS S3 or any S3-compatible server.
    S3 {
        /// The bucket name.
        bucket: String,
        /// The key prefix inside the bucket, without leading or trailing `/`; empty for the whole bucket.
        prefix: String,
        /// The server's URL for S3-compatible servers (MinIO, ...); `None` means AWS.
        endpoint: Option<String>,
        /// The region; `None` takes it from the environment, else `us-east-1`.
        region: Option<String>,
    },
    /// A directory on the local file system.
    Local {
        /// The directory, absolute.
        root: PathBuf,
    },
}

/// Static S3 credentials given explicitly instead of through the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The embedded default location when none is configured: `$CAIRN_STORAGE_DIR`, else
/// `$XDG_DATA_HOME/cairn/storage`, else `~/.local/share/cairn/storage`.
pub fn default_local_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_STORAGE_DIR") {
        return PathBuf::from(dir);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("cairn/storage")
}

/// Retries of failed S3 requests: a few quick ones, so an outage fails a backup in seconds rather than
/// minutes (the backup is then recorded as Failed, never half-written).
fn retry_config() -> RetryConfig {
    RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..RetryConfig::default() }
}

impl Location {
    /// The embedded default: a local directory (see [`default_local_root`]).
    pub fn default_local() -> Self {
        Location::Local { root: default_local_root() }
    }

    /// Opens the location. S3 credentials come from `credentials` when given, else from the usual
    /// `AWS_*` environment variables. A local location's directory is created if missing.
    pub fn open(&self, credentials: Option<&S3Credentials>) -> Result<Store, StoreError> {
        let objects: Arc<dyn ObjectStore> = match self {
            Location::S3 { bucket, prefix, endpoint, region } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry_config());
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
                }
                let region = region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".to_owned());
                builder = builder.with_region(region);
                if let Some(credentials) = credentials {
                    builder = builder
                        .with_access_key_id(&credentials.access_key_id)
                        .with_secret_access_key(&credentials.secret_access_key);
                }
                let s3 = builder
                    .build()
                    .map_err(|source| StoreError::Open { location: self.to_string(), source: Box::new(source) })?;
                if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix.as_str())) }
            }
            Location::Local { root } => {
                std::fs::create_dir_all(root).map_err(|source| StoreError::CreateDir { path: root.clone(), source })?;
                let local = LocalFileSystem::new_with_prefix(root)
                    .map_err(|source| StoreError::Open { location: self.to_string(), source: Box::new(source) })?;
                Arc::new(local)
            }
        };
        Ok(Store { location: self.clone(), objects })
    }
}

impl FromStr for Location {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |problem: String| StoreError::InvalidLocation { url: text.to_owned(), problem, fix: URL_FORMS };
        let url = Url::parse(text).map_err(|e| invalid(format!("not a URL ({e})")))?;
        match url.scheme() {
            "s3" => {
                let bucket =
                    url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| invalid("no bucket name".into()))?;
                let prefix = url.path().trim_matches('/').to_owned();
                let (mut endpoint, mut region) = (None, None);
                for (key, value) in url.query_pairs() {
                    match key.as_ref() {
                        "endpoint" => {
                            Url::parse(&value)
                                .ok()
                                .filter(|e| matches!(e.scheme(), "http" | "https"))
                                .ok_or_else(|| invalid(format!("endpoint {value:?} is not an http(s) URL")))?;
                            endpoint = Some(value.trim_end_matches('/').to_owned());
                        }
                        "region" => region = Some(value.into_owned()),
                        other => return Err(invalid(format!("unknown parameter {other:?} (known: endpoint, region)"))),
                    }
                }
                Ok(Location::S3 { bucket: bucket.to_owned(), prefix, endpoint, region })
            }
            "file" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(invalid("a file URL needs an absolute path after file:// (three slashes)".into()));
                }
                let root = url.to_file_path().map_err(|()| invalid("not an absolute file path".into()))?;
                Ok(Location::Local { root })
            }
            other => Err(invalid(format!("unsupported scheme {other:?}"))),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::S3 { bucket, prefix, endpoint, region } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                let params: Vec<String> = [("endpoint", endpoint), ("region", region)]
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect();
                if !params.is_empty() {
                    write!(f, "?{}", params.join("&"))?;
                }
                Ok(())
            }
            Location::Local { root } => write!(f, "file://{}", root.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_url_with_prefix_endpoint_and_region_parses() {
        let location: Location =
            "s3://backups/team/a?endpoint=http://127.0.0.1:9000/&region=eu-west-1".parse().unwrap();
        assert_eq!(
            location,
            Location::S3 {
                bucket: "backups".into(),
                prefix: "team/a".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("eu-west-1".into()),
            }
        );
        assert_eq!(location.to_string(), "s3://backups/team/a?endpoint=http://127.0.0.1:9000&region=eu-west-1");
    }

    #[test]
    fn file_url_parses_to_its_directory() {
        let location: Location = "file:///var/lib/cairn".parse().unwrap();
        assert_eq!(location, Location::Local { root: "/var/lib/cairn".into() });
    }

    #[test]
    fn bad_location_urls_name_the_problem_and_the_fix() {
        for (url, problem) in [
            ("s3:///prefix", "no bucket name"),
            ("gs://bucket", "unsupported scheme \"gs\""),
            ("s3://b?endpoint=ftp://x", "is not an http(s) URL"),
            ("s3://b?acl=public", "unknown parameter \"acl\""),
            ("file://relative/path", "three slashes"),
            ("backups", "not a URL"),
        ] {
            let message = url.parse::<Location>().unwrap_err().to_string();
            assert!(message.contains(problem), "{url}: {message}");
            assert!(message.contains("s3://BUCKET"), "{url}: {message}");
        }
    }
}
