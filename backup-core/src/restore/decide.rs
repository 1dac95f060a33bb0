//! What happens to one archived object, decided without I/O: whether it is selected and restorable, what
//! is sent, what an object already in the cluster leads to, and what an API error means. The executor
//! (`apply.rs`) asks these functions and sends what they say; restore hooks (init containers put first, exec
//! hooks carried to after the apply) and resource modifiers are steps here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    ExistingResourcePolicy, IndexEntry, ItemOutcome, ItemResult,
    hooks::{ExecPlan, PodRestoreHooks, RestoreHookEntry, pod_restore_hooks, prepend_init_containers},
    modifiers::Modifiers,
    transform::{Transform, changed_fields, merge_patch, skip_reason, strip},
};
use cairn_kube::{
    discovery::ResourceType,
    errors::ErrorKind,
    resources::{NAMESPACES, PODS},
};

use crate::{archive::ObjectIdentity, selection::Selection};

/// The rules a restore decides by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    /// Which objects (by labels; namespaces and types are chosen from the index).
    pub(crate) selection: &'a Selection,
    /// How objects change on their way in.
    pub(crate) transform: Transform<'a>,
    /// What to do with objects that exist.
    pub(crate) policy: ExistingResourcePolicy,
    /// A preview: nothing is changed.
    pub(crate) dry_run: bool,
    /// The spec's restore hook entries, compiled.
    pub(crate) hooks: &'a [RestoreHookEntry],
    /// Resource modifiers, in order.
    pub(crate) modifiers: &'a [Modifiers],
}

/// An object ready to be sent: transformed, and known to be what its path says.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    /// Where it came from.
    pub(crate) entry: IndexEntry,
    /// What is sent.
    pub(crate) object: Value,
    /// For a pod: the exec hooks to run once it is restored.
    pub(crate) exec_hooks: Vec<Result<ExecPlan, String>>,
    /// What resource modifiers changed in it.
    pub(crate) modified: Vec<String>,
    /// The archived object's managed fields, sent on create (as Velero restores them) and never compared.
    pub(crate) managed_fields: Option<Value>,
}

impl Desired {
    /// The namespace it goes to: its path's, mapped (the object's own agrees, it was checked).
    pub(crate) fn namespace<'a>(&'a self, rules: &'a Rules<'_>) -> Option<&'a str> {
        self.entry.namespace.as_deref().map(|ns| rules.transform.target_namespace(ns))
    }

    /// Its name in the cluster: its path's, or for a namespace its mapped name.
    pub(crate) fn name(&self) -> &str {
        self.object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&self.entry.name)
    }

    /// Its `apiVersion`.
    pub(crate) fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// A result for it; what resource modifiers changed is said when nothing else is.
    pub(crate) fn result(&self, outcome: ItemOutcome, reason: Option<String>) -> ItemResult {
        let modified = (!self.modified.is_empty()).then(|| format!("modified by {}", self.modified.join("; ")));
        result(&self.entry, &self.object, outcome, reason.or(modified))
    }
}

/// A result for the object `object` found at `entry`.
pub(crate) fn result(entry: &IndexEntry, object: &Value, outcome: ItemOutcome, reason: Option<String>) -> ItemResult {
    ItemResult {
        resource: entry.group_resource.clone(),
        api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned),
        name: object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&entry.name).to_owned(),
        outcome,
        reason,
        changes: Vec::new(),
    }
}

/// What to do with an archived object once read.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Send it.
    Apply(Desired),
    /// Nothing to send: the result says why.
    Done(ItemResult),
    /// Not selected (by its labels): no result at all.
    NotSelected,
}

/// Reads an archived object and decides whether and what to send: unreadable or not what its path says
/// (failed), not selected by labels, not restorable by rule (skipped), else transformed.
pub(crate) fn prepare(entry: &IndexEntry, bytes: &[u8], rules: &Rules<'_>) -> Prepared {
    let failed = |reason: String| Prepared::Done(result(entry, &Value::Null, ItemOutcome::Failed, Some(reason)));
    let mut object: Value = match serde_json::from_slice(bytes) {
        Ok(object @ Value::Object(_)) => object,
        Ok(_) => return failed("the archived object is not a JSON object".into()),
        Err(e) => return failed(format!("unreadable JSON: {e}")),
    };
    if let Err(problem) = entry.check(&ObjectIdentity::of(&object)) {
        return failed(format!("refused: the archived object is not what its path {} says: {problem}", entry.path));
    }
    if entry.group_resource != NAMESPACES {
        let labels: BTreeMap<String, String> =
            object.pointer("/metadata/labels").and_then(|l| serde_json::from_value(l.clone()).ok()).unwrap_or_default();
        if !rules.selection.labels_match(&labels) {
            return Prepared::NotSelected;
        }
    }
    if let Some(reason) = skip_reason(&entry.group_resource, &object) {
        return Prepared::Done(result(entry, &object, ItemOutcome::Skipped, Some(reason)));
    }
    let managed_fields = object.pointer_mut("/metadata/managedFields").map(Value::take).filter(|f| !f.is_null());
    // A Service's managed fields tell its explicit node ports from allocated ones (`strip` reads them).
    if entry.group_resource == cairn_kube::resources::SERVICES
        && let (Some(fields), Some(metadata)) =
            (&managed_fields, object.get_mut("metadata").and_then(Value::as_object_mut))
    {
        metadata.insert("managedFields".to_owned(), fields.clone());
    }
    let hooks = if entry.group_resource == PODS && (!rules.hooks.is_empty() || names_restore_hooks(&object)) {
        match pod_restore_hooks(&object, rules.hooks) {
            Ok(hooks) => hooks,
            Err(problem) => return failed(format!("not restored: its restore hooks are stated wrongly: {problem}")),
        }
    } else {
        PodRestoreHooks::default()
    };
    // Resource modifiers see the object as archived without what the server sets, before it moves to a
    // mapped namespace (Velero's order: `namespaces` conditions name the backup's namespaces).
    let mut modified = Vec::new();
    if !rules.modifiers.is_empty() {
        strip(&entry.group_resource, &mut object, rules.transform.preserve_node_ports);
        for modifiers in rules.modifiers {
            match modifiers.apply(&entry.group_resource, &mut object) {
                Ok(applied) => modified.extend(applied),
                Err(problem) => {
                    let reason = format!("not restored: a resource modifier failed on it: {problem}");
                    return Prepared::Done(result(entry, &object, ItemOutcome::Failed, Some(reason)));
                }
            }
        }
    }
    rules.transform.apply(&entry.group_resource, &mut object);
    prepend_init_containers(&mut object, hooks.init_containers);
    Prepared::Apply(Desired { entry: entry.clone(), object, exec_hooks: hooks.exec, modified, managed_fields })
}

/// Whether an archived object's annotations state restore hooks.
fn names_restore_hooks(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.keys().any(|k| k.contains(".hook.restore.")))
}

/// Checks that the served type agrees with the path the object came from: a namespaced type under
/// `cluster/` (or the reverse), or a kind other than the type's, is refused.
pub(crate) fn check_type(desired: &Desired, served: &ResourceType) -> Result<(), String> {
    let path_scoped = desired.entry.namespace.is_some();
    if served.namespaced != path_scoped {
        let scope = |namespaced: bool| if namespaced { "namespaced" } else { "cluster-scoped" };
        return Err(format!(
            "refused: {} is {} but the archive keeps this object at {} ({})",
            desired.entry.group_resource,
            scope(served.namespaced),
            scope(path_scoped),
            desired.entry.path
        ));
    }
    let kind = desired.object["kind"].as_str().unwrap_or_default();
    if kind != served.kind {
        return Err(format!(
            "refused: {} holds {} objects but the archived object at {} is a {kind:?}",
            desired.entry.group_resource, served.kind, desired.entry.path
        ));
    }
    Ok(())
}

/// What an object already in the cluster leads to.
#[derive(Debug, PartialEq)]
pub(crate) enum Existing {
    /// Equal to the archived one: nothing to do.
    Unchanged,
    /// Different, and left alone (policy none), with the differing fields.
    Differs(Vec<String>),
    /// Different, and patched (policy update) with this merge patch; the fields it changes.
    Patch(Value, Vec<String>),
}

/// Compares the live object with the desired one, both stripped of what the server owns, and decides by
/// policy. An update also carries the restore's labels.
pub(crate) fn existing(desired: &Desired, mut live: Value, rules: &Rules<'_>) -> Existing {
    let preserve = rules.transform.preserve_node_ports;
    strip(&desired.entry.group_resource, &mut live, preserve);
    let mut wanted = desired.object.clone();
    strip(&desired.entry.group_resource, &mut wanted, preserve);
    let Some(difference) = merge_patch(&live, &wanted) else { return Existing::Unchanged };
    let changes = changed_fields(&difference);
    match rules.policy {
        ExistingResourcePolicy::None => Existing::Differs(changes),
        ExistingResourcePolicy::Update => {
            let mut patch = difference;
            if let (Some(patch), Some(labels)) = (patch.as_object_mut(), desired.object.pointer("/metadata/labels")) {
                let metadata = patch.entry("metadata").or_insert_with(|| json!({}));
                if let Some(metadata) = metadata.as_object_mut() {
                    let merged = metadata.entry("labels").or_insert_with(|| json!({}));
                    if let (Some(merged), Some(labels)) = (merged.as_object_mut(), labels.as_object()) {
                        for (k, v) in labels {
                            merged.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
            Existing::Patch(patch, changes)
        }
    }
}

/// The reason a differing object is left alone under policy none.
pub(crate) const LEFT_ALONE: &str =
    "exists in the cluster and differs; left alone (--existing-resource-policy update would patch it)";

/// What a failed create means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OnError {
    /// A later round may cure it (a namespace or type not there yet, a webhook not up): try again.
    Retry(String),
    /// In a dry run, the namespace this restore would create is missing: counted as created, unchecked.
    AssumeCreated(String),
    /// Final.
    Failed(String),
}

/// Failures that a later round may cure: a missing namespace or type, a webhook whose service is not up.
pub(crate) fn retryable(error: &kube::Error) -> bool {
    let message = match error {
        kube::Error::Api(status) => status.message.as_str(),
        _ => "",
    };
    match ErrorKind::of(error) {
        ErrorKind::NotFound | ErrorKind::Busy => true,
        ErrorKind::ServerError => {
            message.contains("failed calling webhook") || message.contains("no endpoints available")
        }
        ErrorKind::Forbidden => message.contains("being terminated"),
        ErrorKind::Conflict | ErrorKind::Unreachable | ErrorKind::Refused => false,
    }
}

/// Decides what a failed create means. `namespace_planned`: in a dry run, the object's namespace is one
/// this restore would create.
pub(crate) fn on_create_error(error: &kube::Error, rules: &Rules<'_>, namespace_planned: bool) -> OnError {
    let reason = cairn_kube::errors::describe(error);
    match retryable(error) {
        true if rules.dry_run && namespace_planned => {
            OnError::AssumeCreated("after its namespace is created (not checked by the server)".into())
        }
        true => OnError::Retry(reason),
        false => OnError::Failed(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::RestoreSpec;
    use cairn_kube::discovery::Discovery;

    fn rules<'a>(
        selection: &'a Selection,
        mapping: &'a BTreeMap<String, String>,
        policy: ExistingResourcePolicy,
    ) -> Rules<'a> {
        Rules {
            selection,
            transform: Transform {
                namespace_mapping: mapping,
                backup_name: "b",
                restore_name: "r",
                preserve_node_ports: false,
            },
            policy,
            dry_run: false,
            hooks: &[],
            modifiers: &[],
        }
    }

    fn entry(path: &str) -> IndexEntry {
        IndexEntry::parse(path).unwrap()
    }

    #[test]
    fn an_object_elsewhere_than_its_path_is_refused_and_a_sound_one_goes_to_the_mapped_namespace() {
        let selection = Selection::compile(&RestoreSpec::default().selection, &Discovery::default()).unwrap();
        let mapping = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let rules = rules(&selection, &mapping, ExistingResourcePolicy::None);
        let planted = br#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"x","namespace":"kube-system"}}"#;
        let entry_a = entry("resources/rolebindings.rbac.authorization.k8s.io/namespaces/a/x.json");
        match prepare(&entry_a, planted, &rules) {
            Prepared::Done(result) => {
                assert_eq!(result.outcome, ItemOutcome::Failed);
                assert!(result.reason.unwrap().contains("kube-system"));
            }
            other => panic!("{other:?}"),
        }
        let sound = br#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"x","namespace":"a"}}"#;
        let Prepared::Apply(desired) = prepare(&entry_a, sound, &rules) else { panic!("a sound object is applied") };
        assert_eq!(desired.namespace(&rules), Some("b"));
        assert_eq!(desired.object["metadata"]["namespace"], "b");
    }

    #[test]
    fn an_existing_object_is_left_alone_or_patched_by_policy() {
        let selection = Selection::compile(&RestoreSpec::default().selection, &Discovery::default()).unwrap();
        let mapping = BTreeMap::new();
        let archived =
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"a"},"data":{"k":"1"}}"#;
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"a","uid":"u"},"data":{"k":"2"}});
        let none = rules(&selection, &mapping, ExistingResourcePolicy::None);
        let Prepared::Apply(desired) = prepare(&entry("resources/configmaps/namespaces/a/c.json"), archived, &none)
        else {
            panic!()
        };
        assert_eq!(existing(&desired, live.clone(), &none), Existing::Differs(vec!["data.k".into()]));
        let update = rules(&selection, &mapping, ExistingResourcePolicy::Update);
        match existing(&desired, live, &update) {
            Existing::Patch(patch, _) => assert_eq!(patch["data"]["k"], "1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_mapped_namespace_is_unchanged_despite_the_name_label_the_server_sets() {
        let selection = Selection::compile(&RestoreSpec::default().selection, &Discovery::default()).unwrap();
        let mapping = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let rules = rules(&selection, &mapping, ExistingResourcePolicy::Update);
        let archived = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","labels":{"kubernetes.io/metadata.name":"a"}}}"#;
        let Prepared::Apply(desired) = prepare(&entry("resources/namespaces/cluster/a.json"), archived, &rules) else {
            panic!()
        };
        let live = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b","labels":{"kubernetes.io/metadata.name":"b","cairn.dev/backup-name":"b","cairn.dev/restore-name":"r"}}});
        assert_eq!(existing(&desired, live, &rules), Existing::Unchanged);
    }
}
