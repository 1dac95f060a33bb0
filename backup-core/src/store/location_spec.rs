//! A BackupStorageLocation spec turned into the storage location it describes.

use std::path::PathBuf;

use cairn_api::BackupStorageLocationSpec;

use super::{Location, StoreError};

/// The `config` keys each provider understands. `s3ForcePathStyle` (in every Velero guide for MinIO) is
/// accepted and changes nothing: Cairn always sends path-style requests.
const AWS_CONFIG: [&str; 4] = ["region", "s3Url", "profile", "s3ForcePathStyle"];

impl Location {
    /// The storage location a BackupStorageLocation's `spec` describes; `name` is the object's, for errors.
    pub fn from_spec(spec: &BackupStorageLocationSpec, name: &str) -> Result<Location, StoreError> {
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
                let endpoint = match spec.config.get("s3Url") {
                    Some(url) => {
                        Some(crate::store::check_endpoint(url).map_err(|e| invalid(format!("config.s3Url: {e}")))?)
                    }
                    None => None,
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::ObjectStorage;

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
            Location::from_spec(&spec("aws", "b", &[("s3Url", "http://127.0.0.1:9000/"), ("region", "x")]), "main");
        assert_eq!(s3.unwrap().to_string(), "s3://b/team?endpoint=http://127.0.0.1:9000&region=x");
        let local = Location::from_spec(&spec("local", "/var/lib/cairn", &[]), "disk").unwrap();
        assert_eq!(local, Location::Local { root: "/var/lib/cairn/team".into() });
    }

    #[test]
    fn velero_minio_configs_are_accepted() {
        let minio = [("s3Url", "http://minio:9000"), ("region", "minio"), ("s3ForcePathStyle", "true")];
        assert!(Location::from_spec(&spec("aws", "velero", &minio), "default").is_ok());
    }

    #[test]
    fn unusable_specs_name_the_location_and_the_fix() {
        for (spec, problem) in [
            (spec("gcp", "b", &[]), "unknown provider \"gcp\""),
            (spec("aws", "b", &[("insecureSkipTLSVerify", "true")]), "unknown config key \"insecureSkipTLSVerify\""),
            (spec("aws", "b", &[("s3Url", "minio:9000")]), "not an http(s) URL"),
            (spec("local", "relative", &[]), "absolute directory"),
            (spec("aws", " ", &[]), "bucket is empty"),
        ] {
            let message = Location::from_spec(&spec, "main").unwrap_err().to_string();
            assert!(message.contains(problem) && message.contains("\"main\""), "{message}");
        }
    }
}
