//! Storage location URLs (`s3://bucket/prefix?endpoint=..&region=..`, `file:///path`) and opening them.

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use object_store::{
    ClientOptions, ObjectStore, RetryConfig, aws::AmazonS3Builder, local::LocalFileSystem, prefix::PrefixStore,
};
use url::Url;

use super::{Signer, Store, StoreError};
use cairn_kube::cause::chain_text;

const URL_FORMS: &str =
    "use s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&credentials=FILE&profile=NAME] or file:///ABSOLUTE/PATH";

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
        /// An AWS credentials file (INI, as `~/.aws/credentials`) to take the keys from.
        credentials_file: Option<PathBuf>,
        /// The profile in that file (default: `$AWS_PROFILE`, else `default`).
        profile: Option<String>,
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

/// Why URLs with `user:secret@` are refused: a secret in a URL ends up in errors, statuses and logs.
const CREDENTIALS_IN_URL: &str = "the URL carries credentials (user:secret@), which would be shown in errors and \
     statuses; remove them and give the keys through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a credentials \
     file (credentials=FILE) or the location's Secret";

/// Checks an S3 endpoint: an http(s) URL without credentials in it. Returns it without a trailing `/`.
pub(crate) fn check_endpoint(text: &str) -> Result<String, String> {
    let Some(url) = Url::parse(text).ok().filter(|u| matches!(u.scheme(), "http" | "https")) else {
        return Err(format!("endpoint {:?} is not an http(s) URL", redact_credentials(text)));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("endpoint {:?}: {CREDENTIALS_IN_URL}", redact_credentials(text)));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// `text` with whatever could be URL credentials hidden: `scheme://user:secret@host` becomes
/// `scheme://***@host`, and a query holding an encoded `@` is replaced by `?***`. For error messages about
/// URLs that were refused, so a secret typed into one is never shown back.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', '&', ' ', '"']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    match out.find('?') {
        Some(query) if out[query..].to_ascii_lowercase().contains("%40") => format!("{}?***", &out[..query]),
        _ => out,
    }
}

/// How long an S3 request may go without progress: no response to a request (whose body, a part of at
/// most 5 MiB, is sent in that time too), or no bytes of a response body. Long transfers are bounded by
/// progress, never by their total time: a restore may read one archive for hours.
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting to the S3 server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of failed S3 requests: a few quick ones, so an outage fails a backup in seconds rather than
/// minutes (the backup is then recorded as Failed, never half-written). Their number bounds them, not
/// the time since the request began: a stream that breaks after an hour is resumed where it broke.
fn retry_config() -> RetryConfig {
    RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(24 * 3600), ..RetryConfig::default() }
}

/// The HTTP client's timeouts: none on a whole request, [`STALL_TIMEOUT`] on progress.
/// Why the S3 client could not be built, with the fix for the cause a bare image meets: no CA certificates,
/// which the client loads even for an `http://` endpoint.
fn client_cause(error: &object_store::Error) -> String {
    let cause = chain_text(error);
    if !cause.contains("No CA certificates") {
        return cause;
    }
    format!(
        "{cause}: this machine or image has no CA certificates (in /etc/ssl/certs, or where SSL_CERT_FILE and \
         SSL_CERT_DIR point), which the S3 client loads even for http:// endpoints; install them (Debian's \
         ca-certificates; distroless images carry them) or point SSL_CERT_FILE at a bundle"
    )
}

fn client_options() -> ClientOptions {
    ClientOptions::new().with_timeout_disabled().with_connect_timeout(CONNECT_TIMEOUT).with_read_timeout(STALL_TIMEOUT)
}

impl Location {
    /// The embedded default: a local directory (see [`default_local_root`]).
    pub fn default_local() -> Self {
        Location::Local { root: default_local_root() }
    }

    /// Opens a location only to read it: a local directory that does not exist is an error
    /// ([`StoreError::NoSuchDirectory`]) rather than created, so a mistyped path is said to be one.
    pub fn open_existing(&self, credentials: Option<&S3Credentials>) -> Result<Store, StoreError> {
        if let Location::Local { root } = self
            && !root.is_dir()
        {
            return Err(StoreError::NoSuchDirectory { path: root.clone() });
        }
        self.open(credentials)
    }

    /// Opens the location. S3 credentials come from `credentials` when given, else from the usual
    /// `AWS_*` environment variables. A local location's directory is created if missing.
    pub fn open(&self, credentials: Option<&S3Credentials>) -> Result<Store, StoreError> {
        let mut signer = None;
        let objects: Arc<dyn ObjectStore> = match self {
            Location::S3 { bucket, prefix, endpoint, region, credentials_file, profile } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry_config())
                    .with_client_options(client_options());
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
                }
                let region = region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".to_owned());
                builder = builder.with_region(region);
                let from_file = match credentials {
                    Some(_) => None,
                    None => shared_credentials(credentials_file.as_deref(), profile.as_deref())?,
                };
                if let Some(credentials) = credentials.or(from_file.as_ref()) {
                    builder = builder
                        .with_access_key_id(&credentials.access_key_id)
                        .with_secret_access_key(&credentials.secret_access_key);
                }
                let s3 = Arc::new(
                    builder
                        .build()
                        .map_err(|e| StoreError::Open { location: self.to_string(), cause: client_cause(&e) })?,
                );
                signer = Some(Signer { s3: s3.clone(), prefix: prefix.clone() });
                if prefix.is_empty() { s3 } else { Arc::new(PrefixStore::new(s3, prefix.as_str())) }
            }
            Location::Local { root } => {
                std::fs::create_dir_all(root).map_err(|source| StoreError::CreateDir { path: root.clone(), source })?;
                let local = LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| StoreError::Open { location: self.to_string(), cause: chain_text(&e) })?;
                Arc::new(local)
            }
        };
        Ok(Store { location: self.clone(), objects, signer })
    }
}

impl FromStr for Location {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid =
            |problem: String| StoreError::InvalidLocation { url: redact_credentials(text), problem, fix: URL_FORMS };
        let url = Url::parse(text).map_err(|e| invalid(format!("not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(CREDENTIALS_IN_URL.into()));
        }
        match url.scheme() {
            "s3" => {
                let bucket =
                    url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| invalid("no bucket name".into()))?;
                let prefix = url.path().trim_matches('/').to_owned();
                let (mut endpoint, mut region, mut credentials_file, mut profile) = (None, None, None, None);
                for (key, value) in url.query_pairs() {
                    match key.as_ref() {
                        "endpoint" => endpoint = Some(check_endpoint(&value).map_err(invalid)?),
                        "region" => region = Some(value.into_owned()),
                        "credentials" => credentials_file = Some(PathBuf::from(value.into_owned())),
                        "profile" => profile = Some(value.into_owned()),
                        other => {
                            return Err(invalid(format!(
                                "unknown parameter {other:?} (known: endpoint, region, credentials, profile)"
                            )));
                        }
                    }
                }
                Ok(Location::S3 { bucket: bucket.to_owned(), prefix, endpoint, region, credentials_file, profile })
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
            Location::S3 { bucket, prefix, endpoint, region, credentials_file, profile } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                let file = credentials_file.as_ref().map(|p| p.display().to_string());
                let params: Vec<String> =
                    [("endpoint", endpoint), ("region", region), ("credentials", &file), ("profile", profile)]
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

/// Static keys from an AWS shared credentials file: the one named in the location, else (only when the
/// environment has no `AWS_ACCESS_KEY_ID`) `$AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials` if it
/// exists. The profile is the location's, else `$AWS_PROFILE`, else `default`.
fn shared_credentials(
    named: Option<&std::path::Path>,
    profile: Option<&str>,
) -> Result<Option<S3Credentials>, StoreError> {
    let path = match named {
        Some(path) => path.to_path_buf(),
        None => {
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
                return Ok(None);
            }
            let default = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
            match default {
                Some(path) if path.is_file() => path,
                _ => return Ok(None),
            }
        }
    };
    let profile =
        profile.map(str::to_owned).or_else(|| std::env::var("AWS_PROFILE").ok()).unwrap_or_else(|| "default".into());
    let problem = |problem: String| StoreError::Credentials { path: path.clone(), problem };
    let text = std::fs::read_to_string(&path).map_err(|e| problem(format!("cannot read it: {e}")))?;
    credentials_from_ini(&text, &profile).map(Some).map_err(problem)
}

/// The keys of `[profile]` in the text of an AWS credentials file.
fn credentials_from_ini(text: &str, profile: &str) -> Result<S3Credentials, String> {
    let keys = ini_section(text, profile).ok_or_else(|| format!("it has no [{profile}] profile"))?;
    let key = |name: &str| keys.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match (key("aws_access_key_id"), key("aws_secret_access_key")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(S3Credentials { access_key_id, secret_access_key }),
        _ => Err(format!("profile [{profile}] needs aws_access_key_id and aws_secret_access_key")),
    }
}

/// The `key = value` pairs of `[section]` in INI text (`[profile name]` also matches, as in AWS config files).
fn ini_section(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut current: Option<String> = None;
    let mut found = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(['#', ';'])) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            current = Some(name.strip_prefix("profile ").unwrap_or(name).trim().to_owned());
            if current.as_deref() == Some(section) {
                found.get_or_insert_with(Vec::new);
            }
        } else if current.as_deref() == Some(section)
            && let Some((key, value)) = line.split_once('=')
        {
            found.get_or_insert_with(Vec::new).push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    found
}

/// The keys of `profile` (default `default`) in the text of an AWS credentials file kept in a Secret.
pub fn credentials_from_secret(
    secret: &str,
    key: &str,
    text: &str,
    profile: Option<&str>,
) -> Result<S3Credentials, StoreError> {
    credentials_from_ini(text, profile.unwrap_or("default")).map_err(|problem| StoreError::SecretCredentials {
        secret: secret.to_owned(),
        key: key.to_owned(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_credentials_name_the_secret_when_unusable() {
        let keys =
            credentials_from_secret("s", "cloud", "[default]\naws_access_key_id=A\naws_secret_access_key=B", None);
        assert_eq!(keys.unwrap().access_key_id, "A");
        let message = credentials_from_secret("s", "cloud", "[other]\n", None).unwrap_err().to_string();
        assert!(message.contains("secret s key cloud") && message.contains("[default]"), "{message}");
    }

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
                credentials_file: None,
                profile: None,
            }
        );
        assert_eq!(location.to_string(), "s3://backups/team/a?endpoint=http://127.0.0.1:9000&region=eu-west-1");
    }

    #[test]
    fn credentials_files_give_the_profile_keys() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[profile backup]\naws_access_key_id=C\naws_secret_access_key=D\n";
        let dir = std::env::temp_dir().join(format!("cairn-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("credentials");
        std::fs::write(&path, text).unwrap();
        let keys = shared_credentials(Some(&path), Some("backup")).unwrap().unwrap();
        assert_eq!((keys.access_key_id.as_str(), keys.secret_access_key.as_str()), ("C", "D"));
        let missing = shared_credentials(Some(&path), Some("nope")).unwrap_err().to_string();
        assert!(missing.contains("no [nope] profile"), "{missing}");
        let url: Location = format!("s3://b?credentials={}&profile=backup", path.display()).parse().unwrap();
        assert!(url.to_string().contains("profile=backup"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn credentials_in_urls_are_refused_and_never_shown() {
        for url in [
            "s3://b?endpoint=http://KEY:s3cr3tV4lue@127.0.0.1:9000",
            "s3://KEY:s3cr3tV4lue@bucket/prefix",
            "s3://b?endpoint=http%3A%2F%2FKEY%3As3cr3tV4lue%40127.0.0.1%3A9000",
            "s3://b?endpoint=ftp://KEY:s3cr3tV4lue@host",
        ] {
            let message = url.parse::<Location>().unwrap_err().to_string();
            assert!(!message.contains("s3cr3tV4lue"), "{url}: {message}");
        }
        let message = "s3://b?endpoint=http://KEY:s3cr3tV4lue@host".parse::<Location>().unwrap_err().to_string();
        assert!(message.contains("carries credentials"), "{message}");
        assert_eq!(redact_credentials("see http://a:b@h/x and s3://c@d"), "see http://***@h/x and s3://***@d");
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
