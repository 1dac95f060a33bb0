//! Velero's two restore item action plugins that ConfigMaps configure, as rules applied like resource
//! modifiers: `velero.io/change-storage-class` and `velero.io/change-image-name`.
//!
//! Velero finds each ConfigMap in its namespace by two labels: `velero.io/plugin-config: ""` and the plugin's
//! name with the value `RestoreItemAction` (for images, exactly one such ConfigMap, else an error). Velero
//! runs these plugins before it applies resource modifiers: apply these rules first, then the document's.
//!
//! Storage classes: each data entry maps an old storage class to a new one. A PersistentVolumeClaim's or
//! PersistentVolume's `spec.storageClassName`, and each of a StatefulSet's `volumeClaimTemplates`, that names
//! an old class gets the new one; objects without a class keep none. Velero also fails the object when the
//! new class does not exist in the cluster: that check needs the cluster, so it is the caller's.
//!
//! Image names: each data entry's value is `old,new` (the key is free): the first comma splits it and both
//! parts are trimmed. An image that contains `old` anywhere has every occurrence replaced by `new`, so
//! `docker.io/,registry.example.com/`, `5000,3000` and `nginx:1.25,nginx:1.27` all work (and `dev,test`
//! also changes `dev` inside a name: include the `/`). The images of `containers` and `initContainers` of
//! Pods and of the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets,
//! ReplicationControllers, Jobs and CronJobs change. When several entries match one image, Velero's
//! choice is random (a Go map's order); Cairn takes the first by key order. An entry that is not
//! `old,new` with both parts non-empty is refused (Velero skips it silently).

use std::collections::BTreeMap;

use cairn_kube::{
    names::is_valid_name,
    resources::{PODS, PVCS, PVS},
};

use super::{
    Modifiers,
    conditions::Conditions,
    error::ModifierError,
    renames::{CRON_JOBS, ImageNames, STATEFUL_SETS, StorageClasses},
    rules::{Action, Rule},
};

/// The label that marks a ConfigMap as a Velero plugin's configuration (its value is empty).
pub const PLUGIN_CONFIG_LABEL: &str = "velero.io/plugin-config";
/// The label naming the storage class plugin's ConfigMap, set to [`RESTORE_ITEM_ACTION`].
pub const CHANGE_STORAGE_CLASS_LABEL: &str = "velero.io/change-storage-class";
/// The label naming the image name plugin's ConfigMap, set to [`RESTORE_ITEM_ACTION`].
pub const CHANGE_IMAGE_NAME_LABEL: &str = "velero.io/change-image-name";
/// The value of a plugin's label: the kind of plugin the ConfigMap configures.
pub const RESTORE_ITEM_ACTION: &str = "RestoreItemAction";

/// The rules of a `velero.io/change-storage-class` ConfigMap's data (old class: new class). No data, no
/// rules.
pub fn storage_class_changes(data: &BTreeMap<String, String>) -> Result<Modifiers, ModifierError> {
    if data.is_empty() {
        return Ok(Modifiers::default());
    }
    for (old, new) in data {
        if !is_valid_name(new.trim()) {
            return Err(ModifierError::StorageClass { old: old.clone(), new: new.clone() });
        }
    }
    let classes = data.iter().map(|(old, new)| (old.trim().to_owned(), new.trim().to_owned())).collect();
    let rule = Rule {
        name: CHANGE_STORAGE_CLASS_LABEL.to_owned(),
        conditions: Conditions::group_resources(&format!("{{{PVCS},{PVS},{STATEFUL_SETS}}}")),
        action: Action::StorageClasses(StorageClasses::new(classes)),
    };
    Ok(Modifiers { rules: vec![rule] })
}

/// The rules of a `velero.io/change-image-name` ConfigMap's data (any key: `old,new`). No data, no rules.
pub fn image_name_changes(data: &BTreeMap<String, String>) -> Result<Modifiers, ModifierError> {
    if data.is_empty() {
        return Ok(Modifiers::default());
    }
    let mut renames = Vec::new();
    for (key, value) in data {
        let parts = value.split_once(',').map(|(old, new)| (old.trim(), new.trim()));
        let Some((old, new)) = parts.filter(|(old, new)| !old.is_empty() && !new.is_empty()) else {
            return Err(ModifierError::ImageName { key: key.clone(), value: value.clone() });
        };
        renames.push((old.to_owned(), new.to_owned()));
    }
    let groups = format!(
        "{{{PODS},deployments.apps,{STATEFUL_SETS},daemonsets.apps,replicasets.apps,replicationcontrollers,jobs.batch,\
         {CRON_JOBS}}}"
    );
    let rule = Rule {
        name: CHANGE_IMAGE_NAME_LABEL.to_owned(),
        conditions: Conditions::group_resources(&groups),
        action: Action::ImageNames(ImageNames::new(renames)),
    };
    Ok(Modifiers { rules: vec![rule] })
}
