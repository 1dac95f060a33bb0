//! Strategic merge patches (Velero's `strategicPatches`) on built-in kinds, applied as the API server and
//! `kubectl patch` apply them, from a small table of merge keys instead of Kubernetes' Go types.
//!
//! Mappings merge key by key; `null` removes a key. A list merges by its patch merge key when the table
//! below has it: a patch element with a known key merges into that element, one with a new key is added
//! (in Kubernetes' order: the patch's elements in the patch's order, with the object's other elements kept
//! before those they preceded in the object, so added elements lead); `{$patch: delete, <key>: <value>}`
//! removes the element, and a `{$patch: replace}` element makes the rest of the patch list the whole list.
//! Any other list (`tolerations`, `args`, `command`, `accessModes`, `volumeClaimTemplates`...) is replaced
//! whole, as Kubernetes replaces lists without a merge strategy. `$patch: replace` in a mapping replaces
//! the mapping, `$patch: delete` empties it.
//!
//! | where | list | merge key |
//! | --- | --- | --- |
//! | a pod spec (a Pod's `spec`, a `template.spec`) | `containers`, `initContainers`, `ephemeralContainers` | `name` |
//! | | `volumes`, `imagePullSecrets`, `schedulingGates`, `resourceClaims` | `name` |
//! | | `hostAliases` | `ip` |
//! | | `topologySpreadConstraints` | `topologyKey` |
//! | a container of a pod spec | `env` | `name` |
//! | | `ports` | `containerPort` |
//! | | `volumeMounts` | `mountPath` |
//! | | `volumeDevices` | `devicePath` |
//! | a Service's `spec` | `ports` | `port` |
//! | a ServiceAccount | `secrets` | `name` |
//! | any `metadata` | `ownerReferences` | `uid` |
//! | | `finalizers` | (strings, merged as a set) |
//!
//! Not supported: the `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` directives (refused
//! when the modifiers are read), lists under `status`, and the check the API server makes that the patched
//! object still fits its type (a misspelt field is kept, and the API server refuses the object at create).
//! As in Velero, a strategic patch applies only to the kinds of core/v1, apps/v1 and batch/v1 (the types its
//! server knows): any other object, custom resources included, is an error for that object; use a merge
//! patch or a JSON patch for those.

use serde_json::{Map, Value};

use super::{error::RuleProblem, patches::places};

/// The API versions whose kinds strategic patches apply to.
const KNOWN_API_VERSIONS: [&str; 3] = ["v1", "apps/v1", "batch/v1"];

/// Lists merged by key in a pod spec.
const POD_SPEC_LISTS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("volumes", "name"),
    ("imagePullSecrets", "name"),
    ("schedulingGates", "name"),
    ("resourceClaims", "name"),
    ("hostAliases", "ip"),
    ("topologySpreadConstraints", "topologyKey"),
];

/// The pod spec lists whose elements are containers.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Lists merged by key in a container.
const CONTAINER_FIELDS: &[(&str, &str)] =
    &[("env", "name"), ("ports", "containerPort"), ("volumeMounts", "mountPath"), ("volumeDevices", "devicePath")];

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// The patch's list replaces the object's.
    Replace,
    /// Elements (mappings) merge by the value of this key.
    ByKey(&'static str),
    /// Elements (strings) are merged as a set.
    Set,
}

/// How the list `field`, in the mapping at `path` (field names from the root) of a `kind`, merges.
fn strategy(kind: &str, path: &[&str], field: &str) -> Strategy {
    let is_pod_spec = |path: &[&str]| (kind == "Pod" && path == ["spec"]) || path.ends_with(&["template", "spec"]);
    let keyed = |table: &[(&str, &'static str)]| {
        table.iter().find(|(name, _)| *name == field).map_or(Strategy::Replace, |(_, key)| Strategy::ByKey(key))
    };
    match path {
        path if is_pod_spec(path) => keyed(POD_SPEC_LISTS),
        [parent @ .., list] if CONTAINER_LISTS.contains(list) && is_pod_spec(parent) => keyed(CONTAINER_FIELDS),
        [.., "metadata"] if field == "finalizers" => Strategy::Set,
        [.., "metadata"] if field == "ownerReferences" => Strategy::ByKey("uid"),
        ["spec"] if kind == "Service" && field == "ports" => Strategy::ByKey("port"),
        [] if kind == "ServiceAccount" && field == "secrets" => Strategy::ByKey("name"),
        _ => Strategy::Replace,
    }
}

/// Refuses, in a strategic patch, the directives that are not implemented and `$patch` on the whole object.
pub(super) fn check(place: &str, patch: &Value) -> Result<(), RuleProblem> {
    if patch.get("$patch").is_some() {
        let directive = "`$patch` on the whole object".to_owned();
        return Err(RuleProblem::Directive { place: place.to_owned(), directive });
    }
    check_directives(place, patch)
}

fn check_directives(place: &str, patch: &Value) -> Result<(), RuleProblem> {
    let refuse = |directive: String| Err(RuleProblem::Directive { place: place.to_owned(), directive });
    match patch {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value.as_str()) {
                    ("$patch", Some("replace" | "delete")) => {}
                    ("$patch", _) => return refuse(format!("`$patch: {value}`")),
                    (key, _) if key.starts_with('$') => return refuse(format!("`{key}`")),
                    _ => check_directives(place, value)?,
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|item| check_directives(place, item)),
        _ => Ok(()),
    }
}

/// Applies a rule's strategic patches in order, all or nothing.
pub(super) fn apply_strategic_patches(patches: &[Value], object: &mut Value) -> Result<String, String> {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    if !KNOWN_API_VERSIONS.contains(&api_version) {
        return Err(format!(
            "strategic patches need the schema of the object's type, and Cairn, like Velero, knows only the kinds \
             of core/v1, apps/v1 and batch/v1, not {api_version} {kind}; use mergePatches or patches for it"
        ));
    }
    let mut patched = object.clone();
    for patch in patches {
        let (Some(target), Some(patch)) = (patched.as_object_mut(), patch.as_object()) else {
            return Err("the object is not a mapping".to_owned());
        };
        merge_map(target, patch, &kind, &mut Vec::new())?;
    }
    *object = patched;
    Ok(format!("strategic merge patch {}", places(patches)))
}

fn merge_map<'p>(
    original: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
    kind: &str,
    path: &mut Vec<&'p str>,
) -> Result<(), String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = patch.clone();
            replacement.remove("$patch");
            *original = match without_directives(&Value::Object(replacement)) {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            return Ok(());
        }
        Some(_) => {
            original.clear();
            return Ok(());
        }
        None => {}
    }
    for (key, value) in patch {
        if value.is_null() {
            original.remove(key);
            continue;
        }
        match (original.get_mut(key), value) {
            (Some(Value::Object(target)), Value::Object(patch)) => {
                path.push(key);
                merge_map(target, patch, kind, path)?;
                path.pop();
            }
            (Some(Value::Array(target)), Value::Array(patch)) => {
                let strategy = strategy(kind, path, key);
                path.push(key);
                merge_list(target, patch, strategy, kind, path)?;
                path.pop();
            }
            _ => match without_directives(value) {
                Some(value) => {
                    original.insert(key.clone(), value);
                }
                None => {
                    original.remove(key);
                }
            },
        }
    }
    Ok(())
}

fn merge_list<'p>(
    original: &mut Vec<Value>,
    patch: &'p [Value],
    strategy: Strategy,
    kind: &str,
    path: &mut Vec<&'p str>,
) -> Result<(), String> {
    let here = || format!("/{}", path.join("/"));
    if strategy == Strategy::Replace {
        *original = patch.iter().filter_map(without_directives).collect();
        return Ok(());
    }
    let mut elements = original.iter().chain(patch);
    let Some(first) = elements.next() else { return Ok(()) };
    if original.iter().chain(patch).any(Value::is_array) {
        return Err(format!("{}: lists of lists cannot be merged", here()));
    }
    if elements.any(|e| e.is_object() != first.is_object()) {
        return Err(format!("{}: the list mixes mappings with other values", here()));
    }
    match (strategy, first.is_object()) {
        (_, false) => {
            merge_set(original, patch);
            Ok(())
        }
        (Strategy::ByKey(key), true) => merge_by_key(original, patch, key, kind, path),
        _ => Err(format!("{}: a list of mappings without a merge key cannot be merged", here())),
    }
}

/// Merges lists of scalars as a set, in Kubernetes' order.
fn merge_set(original: &mut Vec<Value>, patch: &[Value]) {
    let mut merged: Vec<Value> = Vec::new();
    for value in original.iter().chain(patch) {
        if !merged.contains(value) {
            merged.push(value.clone());
        }
    }
    let (mut named, mut others): (Vec<Value>, Vec<Value>) = merged.into_iter().partition(|v| patch.contains(v));
    let position = |list: &[Value], v: &Value| list.iter().position(|x| x == v);
    named.sort_by_key(|v| position(patch, v));
    others.sort_by_key(|v| position(original, v));
    *original = interleave(others, named, |v| position(original, v));
}

/// Merges lists of mappings by `key`, in Kubernetes' order.
fn merge_by_key<'p>(
    original: &mut Vec<Value>,
    patch: &'p [Value],
    key: &str,
    kind: &str,
    path: &mut Vec<&'p str>,
) -> Result<(), String> {
    let here = format!("/{}", path.join("/"));
    let no_key = || format!("{here}: this list merges by {key}, but an element of the patch has no {key}");
    if original.iter().any(|e| !e.is_object()) {
        return Err(format!("{here}: the object's list holds something else than mappings"));
    }
    let mut merging = Vec::new();
    let mut replace = false;
    for element in patch {
        match element.get("$patch").and_then(Value::as_str) {
            None => merging.push(element),
            Some("delete") => {
                let value = element.get(key).ok_or_else(no_key)?;
                original.retain(|e| e.get(key) != Some(value));
            }
            Some(_) => replace = true,
        }
    }
    if replace {
        *original = merging.into_iter().filter_map(without_directives).collect();
        return Ok(());
    }
    let server_order = original.clone();
    for &element in &merging {
        let value = element.get(key).ok_or_else(no_key)?;
        let found = original.iter().position(|e| e.get(key) == Some(value));
        match (found.map(|i| &mut original[i]), element) {
            (Some(Value::Object(target)), Value::Object(patch)) => merge_map(target, patch, kind, path)?,
            _ => original.extend(without_directives(element)),
        }
    }
    let key_of = |e: &Value| e.get(key).cloned();
    let position = |list: &[&Value], e: &Value| list.iter().position(|x| x.get(key) == e.get(key));
    let merging_keys: Vec<Option<Value>> = merging.iter().map(|e| key_of(e)).collect();
    let (mut named, mut others): (Vec<Value>, Vec<Value>) =
        std::mem::take(original).into_iter().partition(|e| merging_keys.contains(&key_of(e)));
    named.sort_by_key(|e| position(&merging, e));
    let server: Vec<&Value> = server_order.iter().collect();
    others.sort_by_key(|e| position(&server, e));
    *original = interleave(others, named, |e| position(&server, e));
    Ok(())
}

/// Kubernetes' merge of the elements only the object has (`others`, in its order) with those the patch
/// names (`named`, in the patch's order): an element of `others` goes first only when both are in the object
/// and it came first there, so the patch's new elements lead.
fn interleave(others: Vec<Value>, named: Vec<Value>, position: impl Fn(&Value) -> Option<usize>) -> Vec<Value> {
    let mut merged = Vec::with_capacity(others.len() + named.len());
    let mut others = others.into_iter().peekable();
    let mut named = named.into_iter().peekable();
    loop {
        let other_first = match (others.peek(), named.peek()) {
            (None, None) => return merged,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(other), Some(name)) => matches!((position(other), position(name)), (Some(o), Some(n)) if o < n),
        };
        merged.extend(if other_first { others.next() } else { named.next() });
    }
}

/// A patch value as it is set where the object has nothing to merge it with: without `$patch` mappings
/// (`None` when the value itself is one) and without the keys it sets to `null`.
fn without_directives(value: &Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.contains_key("$patch") => None,
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .filter_map(|(k, v)| Some((k.clone(), without_directives(v)?)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(without_directives).collect())),
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": containers, "tolerations": [{"key": "a"}]}}}
        })
    }

    fn patched(mut object: Value, patch: Value) -> Value {
        apply_strategic_patches(&[patch], &mut object).unwrap();
        object
    }

    fn names(object: &Value) -> Vec<&str> {
        object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn containers_merge_by_name_and_new_ones_lead() {
        let object = deployment(json!([{"name": "web", "image": "web:1"}, {"name": "log", "image": "log:1"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "proxy", "image": "proxy:1"}, {"name": "log", "image": "log:2"}
        ]}}}});
        let object = patched(object, patch);
        assert_eq!(names(&object), ["proxy", "web", "log"]);
        assert_eq!(object["spec"]["template"]["spec"]["containers"][2], json!({"name": "log", "image": "log:2"}));
    }

    #[test]
    fn env_ports_and_mounts_merge_by_their_keys_inside_containers() {
        let object = deployment(json!([{
            "name": "web",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80, "name": "http"}],
            "volumeMounts": [{"mountPath": "/data", "name": "data"}]
        }]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "web",
            "env": [{"name": "B", "value": "3"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}]
        }]}}}});
        let container = &patched(object, patch)["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]));
        assert_eq!(container["ports"], json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}]));
        assert_eq!(container["volumeMounts"], json!([{"mountPath": "/data", "name": "data", "readOnly": true}]));
    }

    #[test]
    fn patch_delete_removes_an_element_and_patch_replace_replaces_the_list() {
        let object = deployment(json!([{"name": "web"}, {"name": "log"}]));
        let delete = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "log"}]}}}});
        assert_eq!(names(&patched(object.clone(), delete)), ["web"]);
        let replace =
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only"}]}}}});
        assert_eq!(names(&patched(object, replace)), ["only"]);
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced_and_null_removes_a_key() {
        let object = deployment(json!([{"name": "web"}]));
        let patch = json!({"spec": {"replicas": null, "template": {"spec": {"tolerations": [{"key": "b"}]}}}});
        let object = patched(object, patch);
        assert_eq!(object["spec"]["template"]["spec"]["tolerations"], json!([{"key": "b"}]));
        assert!(object["spec"].get("replicas").is_none());
    }

    #[test]
    fn maps_can_be_replaced_or_emptied() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": {"a": "1", "b": "2"}}});
        let replaced = patched(object.clone(), json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}));
        assert_eq!(replaced["metadata"]["labels"], json!({"c": "3"}));
        let emptied = patched(object, json!({"metadata": {"labels": {"$patch": "delete"}}}));
        assert_eq!(emptied["metadata"]["labels"], json!({}));
    }

    #[test]
    fn service_ports_merge_by_port_and_finalizers_as_a_set() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"finalizers": ["a"]},
            "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}
        });
        let patch =
            json!({"metadata": {"finalizers": ["b", "a"]}, "spec": {"ports": [{"port": 443, "nodePort": 30443}]}});
        let service = patched(service, patch);
        assert_eq!(service["metadata"]["finalizers"], json!(["b", "a"]));
        assert_eq!(service["spec"]["ports"][1], json!({"port": 443, "name": "https", "nodePort": 30443}));
    }

    #[test]
    fn custom_resources_and_unknown_api_versions_are_errors_for_the_object() {
        let mut widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}});
        let error = apply_strategic_patches(&[json!({"spec": {"size": 2}})], &mut widget).unwrap_err();
        assert!(error.contains("not example.com/v1 Widget; use mergePatches or patches"), "{error}");
    }

    #[test]
    fn an_element_without_its_merge_key_is_an_error() {
        let mut object = deployment(json!([{"name": "web"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let error = apply_strategic_patches(&[patch], &mut object).unwrap_err();
        assert_eq!(
            error,
            "/spec/template/spec/containers: this list merges by name, but an element of the patch has no name"
        );
        assert_eq!(names(&object), ["web"]);
    }

    #[test]
    fn unsupported_directives_are_refused() {
        let refused = |patch: Value| check("strategic patch 1", &patch).unwrap_err();
        let order = refused(json!({"spec": {"$setElementOrder/containers": [{"name": "a"}]}}));
        assert!(
            matches!(order, RuleProblem::Directive { directive, .. } if directive == "`$setElementOrder/containers`")
        );
        let merge = refused(json!({"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}));
        assert!(matches!(merge, RuleProblem::Directive { directive, .. } if directive == "`$patch: \"merge\"`"));
        assert!(check("strategic patch 1", &json!({"spec": {"$patch": "replace"}})).is_ok());
        let whole = refused(json!({"$patch": "delete"}));
        assert!(
            matches!(whole, RuleProblem::Directive { directive, .. } if directive == "`$patch` on the whole object")
        );
    }
}
