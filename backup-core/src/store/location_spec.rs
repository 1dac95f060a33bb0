//! BackupStorageLocation specs (`cairn.dev/v1`) turned into locations, and S3 credentials read from the text
//! of a Secret's AWS credentials file.

use std::path::PathBuf;

use super::{Location, S3Credentials, StoreError, location::credentials_from_ini};
use crate::api::BackupStorageLocationSpec;

/// The `config` keys each provider understands.
const AWS_CONFIG: [&str; 3] = ["region", "s3Url", "profile"];

impl Location {
    /// The location a BackupStorageLocation named `name` describes.
    pub fn from_spec(name: &str, spec: &BackupStorageLocationSpec) -> Result<Location, StoreError> {
        let invalid = |problem: String| StoreError::InvalidSpec { location: name.to_owned(), problem };
        let prefix = spec.object_storage.prefix.as_deref().unwrap_or("").trim_matches('/').to_owned();
        let bucket = spec.object_storage.bucket.trim();
        if bucket.is_empty() {
            return Err(invalid(
                "objectStorage.bucket is empty; name the bucket (for provider local: a directory)".into(),
            ));
        }
        if spec.object_storage.ca_cert.is_some() {
            return Err(invalid(
                "objectStorage.caCert is not supported yet; remove it and let the server trust the CA through \
                 its system trust store (SSL_CERT_FILE)"
                    .into(),
            ));
        }
        match spec.provider.as_str() {
            "aws" => {
                if let Some(unknown) = spec.config.keys().find(|k| !AWS_CONFIG.contains(&k.as_str())) {
                    return Err(invalid(format!("unknown config key {unknown:?} (known: {})", AWS_CONFIG.join(", "))));
                }
                let endpoint = spec.config.get("s3Url").map(|u| u.trim_end_matches('/').to_owned());
                if let Some(url) = &endpoint
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    return Err(invalid(format!("config.s3Url {url:?} is not an http(s) URL")));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_owned(),
                    prefix,
                    endpoint,
                    region: spec.config.get("region").cloned(),
                    credentials_file: None,
                    profile: spec.config.get("profile").cloned(),
                })
            }
            "local" => {
                let root = PathBuf::from(bucket);
                if !root.is_absolute() {
                    return Err(invalid(format!(
                        "provider local needs an absolute directory as bucket, not {bucket:?}"
                    )));
                }
                Ok(Location::Local { root: if prefix.is_empty() { root } else { root.join(prefix) } })
            }
            other => Err(invalid(format!("unknown provider {other:?}; use aws (any S3) or local"))),
        }
    }
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
    use crate::api::ObjectStorage;

    fn spec(provider: &str, bucket: &str, config: &[(&str, &str)]) -> BackupStorageLocationSpec {
        BackupStorageLocationSpec {
            provider: provider.into(),
            object_storage: ObjectStorage { bucket: bucket.into(), prefix: Some("/team/".into()), ca_cert: None },
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn aws_and_local_specs_become_locations() {
        let s3 =
            Location::from_spec("main", &spec("aws", "b", &[("s3Url", "http://127.0.0.1:9000/"), ("region", "x")]));
        assert_eq!(s3.unwrap().to_string(), "s3://b/team?endpoint=http://127.0.0.1:9000&region=x");
        let local = Location::from_spec("disk", &spec("local", "/var/lib/cairn", &[])).unwrap();
        assert_eq!(local, Location::Local { root: "/var/lib/cairn/team".into() });
    }

    #[test]
    fn unusable_specs_name_the_location_and_the_fix() {
        for (spec, problem) in [
            (spec("gcp", "b", &[]), "unknown provider \"gcp\""),
            (spec("aws", "b", &[("s3ForcePathStyle", "true")]), "unknown config key \"s3ForcePathStyle\""),
            (spec("aws", "b", &[("s3Url", "minio:9000")]), "not an http(s) URL"),
            (spec("local", "relative", &[]), "absolute directory"),
            (spec("aws", " ", &[]), "bucket is empty"),
        ] {
            let message = Location::from_spec("main", &spec).unwrap_err().to_string();
            assert!(message.contains(problem) && message.contains("\"main\""), "{message}");
        }
    }

    #[test]
    fn secret_credentials_name_the_secret_when_unusable() {
        let keys =
            credentials_from_secret("s", "cloud", "[default]\naws_access_key_id=A\naws_secret_access_key=B", None);
        assert_eq!(keys.unwrap().access_key_id, "A");
        let message = credentials_from_secret("s", "cloud", "[other]\n", None).unwrap_err().to_string();
        assert!(message.contains("secret s key cloud") && message.contains("[default]"), "{message}");
    }
}
