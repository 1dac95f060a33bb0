//! `image set`: new images for named containers of a workload, with the cause recorded in
//! `kubernetes.io/change-cause` so that the revision's history says why (kubectl's `--record`, which is
//! gone, recorded the command line; Cairn records the cause given, else the command).

use serde::Serialize;
use serde_json::json;

use super::{
    CHANGE_CAUSE,
    target::{Target, template_of},
};
use crate::{ImageError, reference::ImageRef, workloads::containers};

/// One container's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    /// The container.
    pub container: String,
    /// Its image before.
    pub from: String,
    /// Its image now.
    pub to: String,
}

/// Parses `CONTAINER=IMAGE` pairs; each image must be a valid reference.
pub fn parse_changes(pairs: &[String]) -> Result<Vec<(String, String)>, ImageError> {
    pairs
        .iter()
        .map(|pair| {
            let (container, image) =
                pair.split_once('=').filter(|(c, i)| !c.is_empty() && !i.is_empty()).ok_or_else(|| {
                    ImageError::Invalid(format!(
                        "{pair:?}: write CONTAINER=IMAGE, e.g. app=registry.example/app:v1.2.3"
                    ))
                })?;
            ImageRef::parse(image).map_err(|e| ImageError::Invalid(e.to_string()))?;
            Ok((container.to_owned(), image.to_owned()))
        })
        .collect()
}

/// Sets `changes` on `target`'s pod template and records `cause`; returns what changed (a container already
/// at its image is left out). Unknown containers are refused, naming those that exist.
pub async fn set_images(
    client: &kube::Client,
    target: &Target,
    changes: &[(String, String)],
    cause: &str,
) -> Result<Vec<ImageChange>, ImageError> {
    let object = target.get(client).await?;
    let template = template_of(&object);
    let spec = template.spec.unwrap_or_default();
    let present = containers(&spec);
    let init_names: Vec<&str> = spec.init_containers.iter().flatten().map(|c| c.name.as_str()).collect();
    let mut regular = Vec::new();
    let mut init = Vec::new();
    let mut changed = Vec::new();
    for (container, image) in changes {
        let Some((_, from, _)) = present.iter().find(|(name, _, _)| name == container) else {
            let names: Vec<&str> = present.iter().map(|(name, _, _)| *name).collect();
            return Err(ImageError::Invalid(format!(
                "{target} has no container {container:?}; its containers: {}",
                names.join(", ")
            )));
        };
        if from == image {
            continue;
        }
        changed.push(ImageChange { container: container.clone(), from: (*from).to_owned(), to: image.clone() });
        let entry = json!({"name": container, "image": image});
        if init_names.contains(&container.as_str()) { init.push(entry) } else { regular.push(entry) }
    }
    if changed.is_empty() {
        return Ok(changed);
    }
    let mut pod_spec = serde_json::Map::new();
    if !regular.is_empty() {
        pod_spec.insert("containers".into(), json!(regular));
    }
    if !init.is_empty() {
        pod_spec.insert("initContainers".into(), json!(init));
    }
    let patch = json!({
        "metadata": {"annotations": {CHANGE_CAUSE: cause}},
        "spec": {"template": {"spec": pod_spec}},
    });
    target.patch(client, &patch).await?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_must_name_a_container_and_a_valid_image() {
        let good = parse_changes(&["app=nginx:1.25".to_owned()]).unwrap();
        assert_eq!(good, [("app".to_owned(), "nginx:1.25".to_owned())]);
        for bad in ["app", "=nginx", "app=", "app=Nginx"] {
            assert!(parse_changes(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
