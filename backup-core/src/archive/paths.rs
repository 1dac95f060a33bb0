//! The archive's paths, printed and parsed in one place, and the rule that an archived object is what its
//! path says it is.
//!
//! ```text
//! metadata/version                                              "1.1.0\n", always first
//! resources/<group-resource>/namespaces/<ns>/<name>.json        a namespaced object
//! resources/<group-resource>/cluster/<name>.json                a cluster-scoped object
//! resources/<group-resource>/<version>-preferredversion/...     the same object again (Velero's copy)
//! ```

use std::borrow::Cow;

use serde::Deserialize;

/// The path of the format version entry.
pub const VERSION_PATH: &str = "metadata/version";

/// What an object's path in the archive says it is: its type, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemPath {
    /// `deployments.apps`, `configmaps`.
    pub group_resource: String,
    /// Its namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl ItemPath {
    /// An object's path: `resources/<gr>/namespaces/<ns>/<name>.json` or `resources/<gr>/cluster/<name>.json`.
    pub fn path(&self) -> String {
        item_path(&self.group_resource, self.namespace.as_deref(), &self.name)
    }

    /// Reads an object's path; other entries (the version file, preferred-version copies) give `None`.
    pub fn parse(path: &str) -> Option<ItemPath> {
        let rest = path.strip_prefix("resources/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (group_resource, namespace, file) = match parts.as_slice() {
            [gr, "namespaces", ns, file] => (*gr, Some((*ns).to_owned()), *file),
            [gr, "cluster", file] => (*gr, None, *file),
            _ => return None,
        };
        let name = file.strip_suffix(".json").filter(|n| !n.is_empty())?;
        if group_resource.is_empty() || namespace.as_deref() == Some("") {
            return None;
        }
        Some(ItemPath { group_resource: group_resource.to_owned(), namespace, name: name.to_owned() })
    }

    /// The API group of the type: `apps` for `deployments.apps`, empty for the core group.
    pub fn group(&self) -> &str {
        self.group_resource.split_once('.').map_or("", |(_, group)| group)
    }

    /// Checks that `object` is the object this path names: same API group, namespace and name. An
    /// archive whose path and content disagree was made by hand or tampered with; its object must not be
    /// applied where its content says (outside the namespaces a restore selected, say).
    pub fn check(&self, object: &ObjectIdentity<'_>) -> Result<(), String> {
        let group = object.api_version.rsplit_once('/').map_or("", |(group, _)| group);
        if group != self.group() {
            return Err(format!(
                "its path names a {} object but it is a {} of {}",
                self.group_resource, object.kind, object.api_version
            ));
        }
        if object.metadata.name.as_ref() != self.name {
            return Err(format!(
                "its path names {:?} but the object inside is named {:?}",
                self.name, object.metadata.name
            ));
        }
        let inside = object.metadata.namespace.as_deref().filter(|ns| !ns.is_empty());
        if inside != self.namespace.as_deref() {
            let scope = |ns: Option<&str>| {
                ns.map_or("no namespace (cluster-scoped)".to_owned(), |ns| format!("namespace {ns:?}"))
            };
            return Err(format!(
                "its path says {} but the object inside says {}",
                scope(self.namespace.as_deref()),
                scope(inside)
            ));
        }
        Ok(())
    }
}

/// What an archived object says it is, read without parsing the rest of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectIdentity<'a> {
    /// `apps/v1`, `v1`.
    #[serde(borrow, default)]
    pub api_version: Cow<'a, str>,
    /// `Deployment`.
    #[serde(borrow, default)]
    pub kind: Cow<'a, str>,
    /// Name and namespace.
    #[serde(borrow, default)]
    pub metadata: IdentityMeta<'a>,
}

/// The identifying part of an object's metadata.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IdentityMeta<'a> {
    /// The name.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// The namespace, for namespaced objects.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
}

impl<'a> ObjectIdentity<'a> {
    /// Reads the identity of the object in `json`.
    pub fn read(json: &'a [u8]) -> Result<ObjectIdentity<'a>, String> {
        serde_json::from_slice(json).map_err(|e| format!("not a readable JSON object ({e})"))
    }

    /// The identity of an object already parsed (a field that is not a string counts as absent).
    pub fn of(object: &'a serde_json::Value) -> ObjectIdentity<'a> {
        let text = |pointer: &str| object.pointer(pointer).and_then(serde_json::Value::as_str);
        ObjectIdentity {
            api_version: Cow::Borrowed(text("/apiVersion").unwrap_or_default()),
            kind: Cow::Borrowed(text("/kind").unwrap_or_default()),
            metadata: IdentityMeta {
                name: Cow::Borrowed(text("/metadata/name").unwrap_or_default()),
                namespace: text("/metadata/namespace").map(Cow::Borrowed),
            },
        }
    }
}

/// Checks the object in `json` against the path it was found at: the one rule, for verification and
/// restores alike.
pub fn check_entry(path: &ItemPath, json: &[u8]) -> Result<(), String> {
    path.check(&ObjectIdentity::read(json)?)
}

/// The path of an object: `resources/<gr>/namespaces/<ns>/<name>.json` or `resources/<gr>/cluster/<name>.json`.
pub fn item_path(group_resource: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("resources/{group_resource}/namespaces/{ns}/{name}.json"),
        None => format!("resources/{group_resource}/cluster/{name}.json"),
    }
}

/// The path of an object's preferred-version copy: `resources/<gr>/<version>-preferredversion/...`.
pub fn preferred_version_path(group_resource: &str, version: &str, namespace: Option<&str>, name: &str) -> String {
    let scoped = match namespace {
        Some(ns) => format!("namespaces/{ns}/{name}.json"),
        None => format!("cluster/{name}.json"),
    };
    format!("resources/{group_resource}/{version}-preferredversion/{scoped}")
}

/// Whether a tar entry path is safe to use: relative, without `..`, without empty or `.` components.
pub fn path_is_safe(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_follow_velero_layout() {
        assert_eq!(item_path("pods", Some("web"), "a"), "resources/pods/namespaces/web/a.json");
        assert_eq!(
            item_path("clusterroles.rbac.authorization.k8s.io", None, "admin"),
            "resources/clusterroles.rbac.authorization.k8s.io/cluster/admin.json"
        );
        assert_eq!(
            preferred_version_path("deployments.apps", "v1", Some("web"), "d"),
            "resources/deployments.apps/v1-preferredversion/namespaces/web/d.json"
        );
    }

    #[test]
    fn item_paths_round_trip_and_copies_do_not_parse() {
        for (gr, ns, name) in [
            ("deployments.apps", Some("web"), "api"),
            ("namespaces", None, "web"),
            ("widgets.demo.cairn.dev", Some("a"), "w.1"),
        ] {
            let path = item_path(gr, ns, name);
            let parsed = ItemPath::parse(&path).unwrap();
            assert_eq!(
                (parsed.group_resource.as_str(), parsed.namespace.as_deref(), parsed.name.as_str()),
                (gr, ns, name)
            );
            assert_eq!(parsed.path(), path);
        }
        assert!(ItemPath::parse("resources/pods/v1-preferredversion/namespaces/web/p.json").is_none());
        assert!(ItemPath::parse("metadata/version").is_none());
        assert!(ItemPath::parse("resources/pods/namespaces/web/.json").is_none());
        assert_eq!(ItemPath::parse("resources/deployments.apps/cluster/x.json").unwrap().group(), "apps");
        assert_eq!(ItemPath::parse("resources/pods/cluster/x.json").unwrap().group(), "");
    }

    #[test]
    fn an_object_must_be_what_its_path_says() {
        let path = ItemPath::parse("resources/configmaps/namespaces/a/c.json").unwrap();
        assert!(
            check_entry(&path, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"a"}}"#)
                .is_ok()
        );
        for (json, problem) in [
            (
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"kube-system"}}"#,
                "namespace \"kube-system\"",
            ),
            (r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#, "no namespace"),
            (r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","namespace":"a"}}"#, "named \"d\""),
            (
                r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"c","namespace":"a"}}"#,
                "RoleBinding",
            ),
            ("[1]", "not a readable JSON object"),
        ] {
            let message = check_entry(&path, json.as_bytes()).unwrap_err();
            assert!(message.contains(problem), "{json}: {message}");
        }
        let namespace = ItemPath::parse("resources/namespaces/cluster/a.json").unwrap();
        assert!(check_entry(&namespace, br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#).is_ok());
        let renamed = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kube-system"}}"#;
        assert!(check_entry(&namespace, renamed).is_err());
        let scoped = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","namespace":"b"}}"#;
        assert!(check_entry(&namespace, scoped).unwrap_err().contains("cluster-scoped"));
    }

    #[test]
    fn unsafe_paths_are_recognised() {
        assert!(path_is_safe("resources/pods/cluster/a.json"));
        for bad in ["../etc/passwd", "/abs", "resources/../../x", "a//b", "./a", ""] {
            assert!(!path_is_safe(bad), "{bad}");
        }
    }
}
