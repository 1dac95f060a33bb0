//! Reading a restore's resource modifiers from the cluster: the plugin ConfigMaps (storage class and image
//! name changes, found by Velero's labels or Cairn's) and the ConfigMap the restore names, all in the Cairn
//! namespace, checked before anything is restored.

use std::collections::BTreeMap;

use cairn_api::ResourceModifierRef;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, api::ListParams};

use super::{
    RestoreError,
    modifiers::{
        CHANGE_IMAGE_NAME_LABEL, CHANGE_STORAGE_CLASS_LABEL, Modifiers, RESTORE_ITEM_ACTION, image_name_changes,
        parse_config_map, storage_class_changes,
    },
};

/// Cairn's names for Velero's plugin ConfigMap labels (`<label>: RestoreItemAction`).
const CAIRN_CHANGE_STORAGE_CLASS_LABEL: &str = "cairn.dev/change-storage-class";
const CAIRN_CHANGE_IMAGE_NAME_LABEL: &str = "cairn.dev/change-image-name";

fn failed(what: String) -> impl FnOnce(kube::Error) -> RestoreError {
    move |error| RestoreError::Modifiers(format!("{what}: {}", cairn_kube::errors::describe(&error)))
}

async fn labelled(api: &Api<ConfigMap>, labels: [&str; 2]) -> Result<Vec<ConfigMap>, RestoreError> {
    let mut found = Vec::new();
    for label in labels {
        let params = ListParams::default().labels(&format!("{label}={RESTORE_ITEM_ACTION}"));
        match api.list(&params).await {
            Ok(list) => found.extend(list.items),
            // Who may not read the namespace has no plugin ConfigMaps there to honour.
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            Err(error) => return Err(failed(format!("listing ConfigMaps labelled {label}"))(error)),
        }
    }
    Ok(found)
}

fn data(map: &ConfigMap) -> BTreeMap<String, String> {
    map.data.clone().unwrap_or_default()
}

/// The modifiers a restore applies, in order: storage class changes, image name changes, then the rules of
/// `reference`. Any that cannot be read refuses the restore naming the ConfigMap and the problem.
pub async fn load_modifiers(
    client: &Client,
    namespace: &str,
    reference: Option<&ResourceModifierRef>,
) -> Result<Vec<Modifiers>, RestoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut all = Vec::new();
    for map in labelled(&api, [CHANGE_STORAGE_CLASS_LABEL, CAIRN_CHANGE_STORAGE_CLASS_LABEL]).await? {
        let name = map.metadata.name.clone().unwrap_or_default();
        all.push(
            storage_class_changes(&data(&map))
                .map_err(|e| RestoreError::Modifiers(format!("ConfigMap {namespace}/{name}: {e}")))?,
        );
    }
    for map in labelled(&api, [CHANGE_IMAGE_NAME_LABEL, CAIRN_CHANGE_IMAGE_NAME_LABEL]).await? {
        let name = map.metadata.name.clone().unwrap_or_default();
        all.push(
            image_name_changes(&data(&map))
                .map_err(|e| RestoreError::Modifiers(format!("ConfigMap {namespace}/{name}: {e}")))?,
        );
    }
    if let Some(reference) = reference {
        if !reference.kind.eq_ignore_ascii_case("configmap") {
            return Err(RestoreError::Modifiers(format!(
                "resource modifiers must be in a ConfigMap, not a {}; name one with --resource-modifier-configmap",
                reference.kind
            )));
        }
        let name = &reference.name;
        let Some(map) = api.get_opt(name).await.map_err(failed(format!("reading ConfigMap {namespace}/{name}")))?
        else {
            return Err(RestoreError::Modifiers(format!(
                "ConfigMap {namespace}/{name} does not exist: create it with `kubectl create configmap {name} -n {namespace} --from-file=rules.yaml`"
            )));
        };
        all.push(
            parse_config_map(&data(&map))
                .map_err(|e| RestoreError::Modifiers(format!("ConfigMap {namespace}/{name}: {e}")))?,
        );
    }
    all.retain(|m| !m.is_empty());
    Ok(all)
}
