//! What happens to an object between the archive and the API server, and how it is compared with what is
//! already there. Pure functions over JSON: no I/O.

use cairn_kube::resources::{CLUSTER_ROLE_BINDINGS, JOBS, NAMESPACES, PODS, PVCS, PVS, ROLE_BINDINGS, SERVICES};
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Label naming the backup an object was restored from.
pub const BACKUP_NAME_LABEL: &str = cairn_api::labels::BACKUP_NAME;
/// Label naming the restore that created or updated an object.
pub const RESTORE_NAME_LABEL: &str = cairn_api::labels::RESTORE_NAME;

/// The label the API server sets on every namespace to its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Metadata the server owns; never sent on create, never compared.
const SERVER_METADATA: &[&str] = &[
    "generateName",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "managedFields",
];

/// How objects are changed on their way in.
#[derive(Debug, Clone, Copy)]
pub struct Transform<'a> {
    /// Old namespace -> new namespace.
    pub namespace_mapping: &'a BTreeMap<String, String>,
    /// The backup's name (a label value).
    pub backup_name: &'a str,
    /// The restore's name (a label value).
    pub restore_name: &'a str,
    /// Keep Services' node ports.
    pub preserve_node_ports: bool,
}

/// Why an object is not restored at all, if it is not: finished pods and jobs, mirror pods.
pub(super) fn skip_reason(group_resource: &str, object: &Value) -> Option<String> {
    match group_resource {
        PODS => {
            let phase = object.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
            if matches!(phase, "Succeeded" | "Failed") {
                return Some(format!("the pod has finished ({phase})"));
            }
            object
                .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                .map(|_| "a mirror pod belongs to its node's kubelet".to_owned())
        }
        JOBS => {
            let finished = object.pointer("/status/completionTime").is_some()
                || object.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|conditions| {
                    conditions.iter().any(|c| {
                        matches!(c["type"].as_str(), Some("Complete" | "Failed"))
                            && c["status"].as_str() == Some("True")
                    })
                });
            finished.then(|| "the job has finished".to_owned())
        }
        _ => None,
    }
}

/// Removes what the server owns or assigns: server metadata, status, a Pod's node and service-account
/// token volumes, a Service's cluster IPs and (unless preserved) node ports. Applied alike to archived and
/// live objects, so they compare equal when only such fields differ.
pub fn strip(group_resource: &str, object: &mut Value, preserve_node_ports: bool) {
    // Per type first: a Service's explicit node ports are read from its metadata (managed fields, the
    // last-applied configuration) before the server's metadata goes.
    match group_resource {
        PODS => strip_pod(object),
        SERVICES => strip_service(object, preserve_node_ports),
        NAMESPACES => strip_namespace(object),
        PVS => strip_volume_binding(object, &["/spec/claimRef/uid", "/spec/claimRef/resourceVersion"]),
        PVCS => strip_volume_binding(object, &[]),
        JOBS => strip_job(object),
        _ => {}
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
        if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(BACKUP_NAME_LABEL);
            labels.remove(RESTORE_NAME_LABEL);
            if labels.is_empty() {
                metadata.remove("labels");
            }
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
}

/// The binding controller's marks, which name the old binding (as Velero removes them).
const BINDING_ANNOTATIONS: [&str; 2] = ["pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller"];

/// A volume or claim binds again after a restore: the binding controller's annotations go, and for a volume
/// the uid and resourceVersion of the claim it was bound to (the restored claim is a new object; its
/// namespace and name stay, so the two find each other).
fn strip_volume_binding(object: &mut Value, claim_fields: &[&str]) {
    for pointer in claim_fields {
        let (parent, field) = pointer.rsplit_once('/').expect("pointers have a parent");
        if let Some(parent) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
            parent.remove(field);
        }
    }
    remove_keys(object, "/metadata/annotations", &BINDING_ANNOTATIONS);
}

/// The labels the Job controller derives from the old Job's uid: a restored Job is a new object, and the API
/// server refuses a selector it did not generate (Velero removes them too).
const JOB_UID_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

fn strip_job(job: &mut Value) {
    remove_keys(job, "/spec/selector/matchLabels", &JOB_UID_LABELS);
    remove_keys(job, "/spec/template/metadata/labels", &JOB_UID_LABELS);
    let empty = job.pointer("/spec/selector").and_then(Value::as_object).is_some_and(|selector| {
        selector.get("matchLabels").and_then(Value::as_object).is_none_or(|m| m.is_empty())
            && selector.get("matchExpressions").and_then(Value::as_array).is_none_or(|e| e.is_empty())
    });
    if empty && let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("selector");
    }
}

/// Removes `keys` from the map at `pointer`, and the map when that leaves it empty.
fn remove_keys(object: &mut Value, pointer: &str, keys: &[&str]) {
    let Some(map) = object.pointer_mut(pointer).and_then(Value::as_object_mut) else { return };
    for key in keys {
        map.remove(*key);
    }
    if map.is_empty()
        && let Some((parent, field)) = pointer.rsplit_once('/')
        && let Some(parent) = object.pointer_mut(parent).and_then(Value::as_object_mut)
    {
        parent.remove(field);
    }
}

/// The API server labels every namespace with its own name: that label is the server's, not the backup's
/// (and names the old namespace in an archived object that is mapped to a new one).
fn strip_namespace(namespace: &mut Value) {
    let Some(metadata) = namespace.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
        labels.remove(NAMESPACE_NAME_LABEL);
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
}

fn strip_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    spec.remove("nodeName");
    let token_volume = |v: &Value| {
        v["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")) && v.get("projected").is_some()
    };
    let mut removed = Vec::new();
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.retain(|v| {
            let drop = token_volume(v);
            if drop {
                removed.push(v["name"].as_str().unwrap_or_default().to_owned());
            }
            !drop
        });
        if volumes.is_empty() {
            spec.remove("volumes");
        }
    }
    for kind in ["containers", "initContainers", "ephemeralContainers"] {
        for container in spec.get_mut(kind).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(container) = container.as_object_mut() else { continue };
            if let Some(mounts) = container.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                mounts.retain(|m| !removed.iter().any(|r| m["name"].as_str() == Some(r.as_str())));
                if mounts.is_empty() {
                    container.remove("volumeMounts");
                }
            }
        }
    }
}

/// The node ports a Service's owner set explicitly, as Velero tells them: from the last-applied
/// configuration when there is one (named ports by name, unnamed ones by value), else from the managed fields
/// (`k:{"port":P,"protocol":"T"}` entries owning `f:nodePort`); and whether `healthCheckNodePort` was set.
struct ExplicitPorts {
    named: Vec<String>,
    unnamed: Vec<i64>,
    keyed: Vec<String>,
    from_last_applied: bool,
    health_check: bool,
}

fn explicit_ports(service: &Value) -> ExplicitPorts {
    let mut explicit = ExplicitPorts {
        named: Vec::new(),
        unnamed: Vec::new(),
        keyed: Vec::new(),
        from_last_applied: false,
        health_check: false,
    };
    let last_applied = service
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    if let Some(applied) = last_applied {
        explicit.from_last_applied = true;
        for port in applied.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            let node_port = match &port["nodePort"] {
                Value::Number(n) => n.as_i64().unwrap_or(0),
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            };
            if node_port > 0 {
                match port["name"].as_str() {
                    Some(name) => explicit.named.push(name.to_owned()),
                    None => explicit.unnamed.push(node_port),
                }
            }
        }
        explicit.health_check =
            applied.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).is_some_and(|p| p > 0);
    }
    for entry in service.pointer("/metadata/managedFields").and_then(Value::as_array).into_iter().flatten() {
        let Some(spec) = entry.pointer("/fieldsV1/f:spec") else { continue };
        if spec.get("f:healthCheckNodePort").is_some() {
            explicit.health_check = true;
        }
        for (key, port) in spec.get("f:ports").and_then(Value::as_object).into_iter().flatten() {
            if port.get("f:nodePort").is_some() {
                explicit.keyed.push(key.clone());
            }
        }
    }
    explicit
}

/// The managed-fields key of a Service port: `k:{"port":80,"protocol":"TCP"}`.
fn port_key(port: &Value) -> String {
    let protocol = port["protocol"].as_str().unwrap_or("TCP");
    format!(r#"k:{{"port":{},"protocol":"{protocol}"}}"#, port["port"].as_i64().unwrap_or(0))
}

fn strip_service(service: &mut Value, preserve_node_ports: bool) {
    let explicit = (!preserve_node_ports).then(|| explicit_ports(service));
    let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if !headless {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    let Some(explicit) = explicit else { return };
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    if !explicit.health_check {
        spec.remove("healthCheckNodePort");
    }
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        let kept = if explicit.from_last_applied {
            match port["name"].as_str() {
                Some(name) if !name.is_empty() => explicit.named.iter().any(|n| n == name),
                _ => port["nodePort"].as_i64().is_some_and(|p| explicit.unnamed.contains(&p)),
            }
        } else {
            explicit.keyed.contains(&port_key(port))
        };
        if !kept && let Some(port) = port.as_object_mut() {
            port.remove("nodePort");
        }
    }
}

impl Transform<'_> {
    /// The namespace objects of `namespace` go to.
    pub fn target_namespace<'n>(&'n self, namespace: &'n str) -> &'n str {
        self.namespace_mapping.get(namespace).map_or(namespace, String::as_str)
    }

    /// The object as it will be sent: stripped, moved to its mapped namespace (with the references that
    /// point into it), and labelled with the backup and restore names. Namespaces are not labelled, as Velero
    /// labels none: a namespace outlives the restore that made it, and the objects in it say where each
    /// came from.
    pub fn apply(&self, group_resource: &str, object: &mut Value) {
        strip(group_resource, object, self.preserve_node_ports);
        self.map_namespaces(group_resource, object);
        if group_resource == NAMESPACES {
            return;
        }
        let labels = object
            .as_object_mut()
            .and_then(|o| o.entry("metadata").or_insert_with(|| Value::Object(Map::new())).as_object_mut())
            .map(|m| m.entry("labels").or_insert_with(|| Value::Object(Map::new())));
        if let Some(Value::Object(labels)) = labels {
            labels.insert(BACKUP_NAME_LABEL.into(), Value::String(cairn_kube::names::label_value(self.backup_name)));
            labels.insert(RESTORE_NAME_LABEL.into(), Value::String(cairn_kube::names::label_value(self.restore_name)));
        }
    }

    fn map(&self, field: Option<&mut Value>) {
        if let Some(Value::String(namespace)) = field
            && let Some(target) = self.namespace_mapping.get(namespace.as_str())
        {
            *namespace = target.clone();
        }
    }

    fn map_namespaces(&self, group_resource: &str, object: &mut Value) {
        if self.namespace_mapping.is_empty() {
            return;
        }
        self.map(object.pointer_mut("/metadata/namespace"));
        match group_resource {
            NAMESPACES => self.map(object.pointer_mut("/metadata/name")),
            PVS => self.map(object.pointer_mut("/spec/claimRef/namespace")),
            ROLE_BINDINGS | CLUSTER_ROLE_BINDINGS => {
                if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
                    for subject in subjects {
                        self.map(subject.get_mut("namespace"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A JSON merge patch (RFC 7386) that turns `live` into `desired`, or `None` when they are equal. Keys of
/// `live` missing from `desired` are removed (null).
pub fn merge_patch(live: &Value, desired: &Value) -> Option<Value> {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            let mut patch = Map::new();
            for (key, want) in desired {
                match live.get(key) {
                    Some(have) if have == want => {}
                    Some(have) if have.is_object() && want.is_object() => {
                        if let Some(inner) = merge_patch(have, want) {
                            patch.insert(key.clone(), inner);
                        }
                    }
                    _ => {
                        patch.insert(key.clone(), want.clone());
                    }
                }
            }
            for key in live.keys().filter(|k| !desired.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if live == desired => None,
        _ => Some(desired.clone()),
    }
}

/// The dotted paths a merge patch changes (`spec.replicas`, `data.LOG_LEVEL`), for previews and warnings.
pub fn changed_fields(patch: &Value) -> Vec<String> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, inner) in map {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, inner, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk("", patch, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn transform<'a>(mapping: &'a BTreeMap<String, String>) -> Transform<'a> {
        Transform { namespace_mapping: mapping, backup_name: "b", restore_name: "r", preserve_node_ports: false }
    }

    #[test]
    fn server_fields_status_node_and_token_volumes_are_stripped() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "a", "uid": "u", "resourceVersion": "7", "ownerReferences": [{}], "managedFields": []},
            "spec": {"nodeName": "n1",
                "volumes": [{"name": "kube-api-access-x1", "projected": {}}, {"name": "data", "emptyDir": {}}],
                "containers": [{"name": "c", "volumeMounts": [{"name": "kube-api-access-x1"}, {"name": "data"}]}]},
            "status": {"phase": "Running"}
        });
        let mapping = BTreeMap::new();
        transform(&mapping).apply("pods", &mut pod);
        assert_eq!(
            pod["metadata"],
            json!({"name": "p", "namespace": "a", "labels": {BACKUP_NAME_LABEL: "b", RESTORE_NAME_LABEL: "r"}})
        );
        assert_eq!(
            pod["spec"],
            json!({"volumes": [{"name": "data", "emptyDir": {}}], "containers": [{"name": "c", "volumeMounts": [{"name": "data"}]}]})
        );
        assert!(pod.get("status").is_none());
    }

    #[test]
    fn volumes_claims_and_jobs_lose_what_names_their_old_objects() {
        let mut pv = json!({"metadata": {"name": "pv", "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"claimRef": {"namespace": "a", "name": "c", "uid": "u-1", "resourceVersion": "7"}}});
        strip(PVS, &mut pv, false);
        assert_eq!(pv["spec"]["claimRef"], json!({"namespace": "a", "name": "c"}));
        assert!(pv["metadata"].get("annotations").is_none());
        let mut pvc = json!({"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes", "keep": "me"}}, "spec": {"volumeName": "pv"}});
        strip(PVCS, &mut pvc, false);
        assert_eq!(pvc["metadata"]["annotations"], json!({"keep": "me"}));
        assert_eq!(pvc["spec"]["volumeName"], "pv");
        let mut job = json!({"spec": {"selector": {"matchLabels": {"controller-uid": "u-2"}},
            "template": {"metadata": {"labels": {"controller-uid": "u-2", "batch.kubernetes.io/controller-uid": "u-2", "app": "x"}}}}});
        strip(JOBS, &mut job, false);
        assert!(job["spec"].get("selector").is_none(), "{job}");
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], json!({"app": "x"}));
    }

    #[test]
    fn explicit_node_ports_stay_and_allocated_ones_go_as_velero_decides() {
        let ports = json!([
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "metrics", "port": 9090, "protocol": "TCP", "nodePort": 31999}
        ]);
        let applied = r#"{"spec":{"type":"NodePort","ports":[{"name":"http","port":80,"nodePort":30080},{"name":"metrics","port":9090}]}}"#;
        let mut by_annotation = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied}},
            "spec": {"type": "NodePort", "ports": ports.clone(), "healthCheckNodePort": 32000}});
        strip(SERVICES, &mut by_annotation, false);
        assert_eq!(by_annotation["spec"]["ports"][0]["nodePort"], 30080);
        assert!(by_annotation["spec"]["ports"][1].get("nodePort").is_none());
        assert!(by_annotation["spec"].get("healthCheckNodePort").is_none());

        let owned = json!({"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {"f:ports": {
            "k:{\"port\":9090,\"protocol\":\"TCP\"}": {"f:nodePort": {}, "f:port": {}}}}}});
        let mut by_fields =
            json!({"metadata": {"managedFields": [owned]}, "spec": {"type": "NodePort", "ports": ports}});
        strip(SERVICES, &mut by_fields, false);
        assert!(by_fields["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(by_fields["spec"]["ports"][1]["nodePort"], 31999);
        assert!(by_fields["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn services_lose_cluster_ips_and_node_ports_unless_headless_or_preserved() {
        let service = json!({"spec": {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"], "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut plain = service.clone();
        strip("services", &mut plain, false);
        assert_eq!(plain["spec"], json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let mut preserved = service;
        strip("services", &mut preserved, true);
        assert_eq!(preserved["spec"]["ports"][0]["nodePort"], 30080);
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        strip("services", &mut headless, false);
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn namespace_mapping_reaches_subjects_claim_refs_and_namespace_objects() {
        let mapping = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let t = transform(&mapping);
        let mut binding = json!({"metadata": {"name": "rb", "namespace": "a"}, "subjects": [{"kind": "ServiceAccount", "name": "s", "namespace": "a"}, {"kind": "ServiceAccount", "name": "o", "namespace": "other"}]});
        t.apply("rolebindings.rbac.authorization.k8s.io", &mut binding);
        assert_eq!(
            (
                binding["metadata"]["namespace"].as_str(),
                binding["subjects"][0]["namespace"].as_str(),
                binding["subjects"][1]["namespace"].as_str()
            ),
            (Some("b"), Some("b"), Some("other"))
        );
        let mut pv = json!({"metadata": {"name": "pv"}, "spec": {"claimRef": {"namespace": "a", "name": "c"}}});
        t.apply("persistentvolumes", &mut pv);
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "b");
        let mut ns = json!({"metadata": {"name": "a", "labels": {"team": "x"}}});
        t.apply("namespaces", &mut ns);
        assert_eq!(
            (ns["metadata"]["name"].as_str(), ns["metadata"]["labels"]["team"].as_str()),
            (Some("b"), Some("x"))
        );
    }

    #[test]
    fn merge_patch_carries_exactly_the_difference() {
        let live = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let desired = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "3", "c": "4"}, "immutable": false});
        let patch = merge_patch(&live, &desired).unwrap();
        assert_eq!(patch, json!({"data": {"b": "3", "c": "4"}, "immutable": false}));
        assert_eq!(changed_fields(&patch), ["data.b", "data.c", "immutable"]);
        assert_eq!(merge_patch(&live, &live), None);
        assert_eq!(merge_patch(&json!({"data": {"x": "1"}}), &json!({"data": {}})), Some(json!({"data": {"x": null}})));
    }

    #[test]
    fn finished_pods_and_jobs_and_mirror_pods_are_skipped() {
        assert!(skip_reason("pods", &json!({"status": {"phase": "Succeeded"}})).is_some());
        assert!(skip_reason("pods", &json!({"status": {"phase": "Running"}})).is_none());
        assert!(
            skip_reason("pods", &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})).is_some()
        );
        assert!(
            skip_reason("jobs.batch", &json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}))
                .is_some()
        );
        assert!(skip_reason("jobs.batch", &json!({"status": {}})).is_none());
    }
}
