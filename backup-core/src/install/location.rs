//! The default BackupStorageLocation and the Secret holding its credentials.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};

use super::{DefaultLocation, LocationProvider, meta};
use cairn_api::{AccessMode, BackupStorageLocation, BackupStorageLocationSpec, ObjectStorage, SecretKeySelector};

/// The name of the location `cairn install` creates.
pub const DEFAULT_LOCATION_NAME: &str = "default";
/// The Secret holding the default location's credentials file.
pub const CREDENTIALS_SECRET: &str = "cairn-credentials";
/// The key of [`CREDENTIALS_SECRET`] holding the file (Velero's key).
pub const CREDENTIALS_KEY: &str = "cloud";

/// The Secret with the credentials file, when the location has one.
pub(super) fn credentials_secret(namespace: &str, location: &DefaultLocation) -> Option<Secret> {
    let LocationProvider::Aws { credentials: Some(file), .. } = &location.provider else { return None };
    Some(Secret {
        metadata: meta(CREDENTIALS_SECRET, Some(namespace)),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(CREDENTIALS_KEY.to_owned(), ByteString(file.clone().into_bytes()))])),
        ..Secret::default()
    })
}

/// The location named [`DEFAULT_LOCATION_NAME`], marked default, readable and writable.
pub(super) fn backup_storage_location(namespace: &str, location: &DefaultLocation) -> BackupStorageLocation {
    let (provider, config, credential) = match &location.provider {
        LocationProvider::Aws { config, credentials } => (
            "aws",
            config.entries().into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            credentials
                .as_ref()
                .map(|_| SecretKeySelector { name: CREDENTIALS_SECRET.to_owned(), key: CREDENTIALS_KEY.to_owned() }),
        ),
        LocationProvider::Local { .. } => ("local", BTreeMap::new(), None),
    };
    let spec = BackupStorageLocationSpec {
        provider: provider.to_owned(),
        object_storage: ObjectStorage {
            bucket: location.bucket.clone(),
            prefix: location.prefix.clone(),
            ca_cert: None,
        },
        config,
        credential,
        default: true,
        access_mode: AccessMode::ReadWrite,
        backup_sync_period: None,
        validation_frequency: None,
        backup_format: None,
    };
    let mut object = BackupStorageLocation::new(DEFAULT_LOCATION_NAME, spec);
    object.metadata = meta(DEFAULT_LOCATION_NAME, Some(namespace));
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::AwsConfig;

    fn aws(credentials: Option<&str>) -> DefaultLocation {
        DefaultLocation {
            bucket: "backups".into(),
            prefix: Some("cluster-a".into()),
            provider: LocationProvider::Aws {
                config: AwsConfig { region: Some("eu-west-1".into()), ..AwsConfig::default() },
                credentials: credentials.map(Into::into),
            },
        }
    }

    #[test]
    fn no_secret_without_credentials() {
        assert!(credentials_secret("cairn", &aws(None)).is_none());
        assert!(credentials_secret("cairn", &DefaultLocation::default()).is_none());
        assert!(backup_storage_location("cairn", &aws(None)).spec.credential.is_none());
    }

    #[test]
    fn credentials_go_into_a_secret_the_location_names() {
        let file = "[default]\naws_access_key_id=AK\naws_secret_access_key=SK\n";
        let secret = credentials_secret("ops", &aws(Some(file))).unwrap();
        assert_eq!(secret.data.unwrap()[CREDENTIALS_KEY].0, file.as_bytes());
        let location = backup_storage_location("ops", &aws(Some(file)));
        let credential = location.spec.credential.unwrap();
        assert_eq!((credential.name.as_str(), credential.key.as_str()), (CREDENTIALS_SECRET, CREDENTIALS_KEY));
        assert_eq!(location.metadata.namespace.as_deref(), Some("ops"));
    }

    #[test]
    fn location_is_the_default_and_carries_the_provider_config() {
        let location = backup_storage_location("cairn", &aws(None));
        assert!(location.spec.default);
        assert_eq!(location.spec.provider, "aws");
        assert_eq!(location.spec.config["region"], "eu-west-1");
        assert_eq!(location.spec.object_storage.prefix.as_deref(), Some("cluster-a"));
        let local = backup_storage_location("cairn", &DefaultLocation::default());
        assert_eq!(local.spec.provider, "local");
        assert!(local.spec.config.is_empty());
    }
}
