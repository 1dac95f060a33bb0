//! JSON patches (RFC 6902, Velero's `patches`) and JSON merge patches (RFC 7386, `mergePatches`): read
//! and checked, then applied.
//!
//! A rule's JSON patch operations apply in order, all or nothing. A `test` that fails (a different value,
//! or a key absent from an existing object) leaves the object as it was and the rule counts as not applied:
//! not an error, as in Velero. A `test` under an absent parent, and any other operation that cannot apply
//! (`replace` or `remove` of an absent key, an index past the end), is an error. The operations other than
//! `test` are the `json-patch` crate's.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    conditions::written,
    error::RuleProblem,
    pointer::{self, Pointer, Test},
    value,
};

/// One of `patches` as written (Velero calls the operation `operation`, not RFC 6902's `op`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperation {
    operation: Option<String>,
    path: Option<String>,
    from: Option<String>,
    value: Option<Value>,
}

/// One of `mergePatches` or `strategicPatches` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPatchData {
    patch_data: Option<String>,
}

/// A checked JSON patch operation.
#[derive(Debug, Clone)]
pub(super) enum Operation {
    /// `test`, evaluated here with Velero's meaning of absent places.
    Test {
        /// Where.
        path: Pointer,
        /// The value expected there.
        value: Value,
    },
    /// Any other operation, applied by the `json-patch` crate.
    Change {
        /// `add /spec/replicas`, for descriptions and errors.
        summary: String,
        /// The operation.
        operation: json_patch::PatchOperation,
    },
}

impl Operation {
    /// Checks the `number`th operation of a rule.
    pub(super) fn new(number: usize, raw: RawOperation) -> Result<Operation, RuleProblem> {
        let place = format!("patch {number}");
        let name = raw.operation.unwrap_or_default();
        if !matches!(name.as_str(), "add" | "remove" | "replace" | "move" | "copy" | "test") {
            return Err(RuleProblem::Operation { place, operation: name });
        }
        let pointer = |field: &str, text: String| {
            Pointer::parse(&text).map_err(|problem| RuleProblem::Pointer {
                place: format!("{place} {field}"),
                path: text,
                problem,
            })
        };
        let path = pointer("path", raw.path.unwrap_or_default())?;
        let value = value::read(raw.value.as_ref()).map_err(|problem| RuleProblem::Value {
            place: place.clone(),
            value: written(raw.value.as_ref()),
            problem,
        })?;
        if name == "test" {
            return Ok(Operation::Test { path, value });
        }
        let (summary, operation) = match name.as_str() {
            "move" | "copy" => {
                let from =
                    raw.from.ok_or_else(|| RuleProblem::NoFrom { place: place.clone(), operation: name.clone() })?;
                let from = pointer("from", from)?;
                let summary = format!("{name} {} to {}", from.as_str(), path.as_str());
                (summary, json!({"op": name, "from": from.as_str(), "path": path.as_str()}))
            }
            "remove" => (format!("remove {}", path.as_str()), json!({"op": name, "path": path.as_str()})),
            _ => (format!("{name} {}", path.as_str()), json!({"op": name, "path": path.as_str(), "value": value})),
        };
        let operation = serde_json::from_value(operation).map_err(|e| RuleProblem::Pointer {
            place: format!("{place} path"),
            path: path.as_str().to_owned(),
            problem: e.to_string(),
        })?;
        Ok(Operation::Change { summary, operation })
    }

    fn summary(&self) -> String {
        match self {
            Operation::Test { path, .. } => format!("test {}", path.as_str()),
            Operation::Change { summary, .. } => summary.clone(),
        }
    }
}

/// Applies a rule's JSON patch operations to `object`: `Some(summary)` when they applied, `None` when a
/// `test` failed (the object is unchanged), an error when one could not apply (the object is unchanged).
pub(super) fn apply_json_patch(operations: &[Operation], object: &mut Value) -> Result<Option<String>, String> {
    let mut patched = object.clone();
    for operation in operations {
        match operation {
            Operation::Test { path, value } => match pointer::test(&patched, path, value)? {
                Test::Passed => {}
                Test::Failed => return Ok(None),
                Test::Missing => {
                    return Err(format!("test {}: a parent of that place is absent", path.as_str()));
                }
            },
            Operation::Change { summary, operation } => {
                json_patch::patch(&mut patched, std::slice::from_ref(operation))
                    .map_err(|e| format!("{summary}: {}", e.kind))?;
            }
        }
    }
    *object = patched;
    Ok(Some(operations.iter().map(Operation::summary).collect::<Vec<_>>().join(", ")))
}

/// Reads a merge or strategic patch's `patchData` (YAML or JSON) into a mapping.
pub(super) fn patch_data(place: &str, raw: RawPatchData) -> Result<Value, RuleProblem> {
    let problem = |problem: String| RuleProblem::PatchData { place: place.to_owned(), problem };
    let text = raw.patch_data.unwrap_or_default();
    let data: Value = serde_yaml_ng::from_str(&text).map_err(|e| problem(e.to_string()))?;
    match data {
        Value::Object(_) => Ok(data),
        Value::Null => Err(problem("it is empty".to_owned())),
        other => Err(problem(format!("it is {}, not a mapping", kind_of(&other)))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Applies merge patches in order; never fails (RFC 7386 merges any two documents).
pub(super) fn apply_merge_patches(patches: &[Value], object: &mut Value) -> String {
    for patch in patches {
        json_patch::merge(object, patch);
    }
    format!("merge patch {}", places(patches))
}

/// The places a patch sets, for descriptions: the paths to its leaves (lists count as leaves, strategic
/// patch directives are left out), at most five.
pub(super) fn places(patches: &[Value]) -> String {
    fn walk(value: &Value, path: &mut String, out: &mut Vec<String>) {
        let mut fields = value.as_object().into_iter().flatten().filter(|(key, _)| !key.starts_with('$')).peekable();
        if fields.peek().is_none() {
            let place = if path.is_empty() { "/".to_owned() } else { path.clone() };
            if !out.contains(&place) {
                out.push(place);
            }
            return;
        }
        for (key, value) in fields {
            let length = path.len();
            path.push('/');
            path.push_str(&key.replace('~', "~0").replace('/', "~1"));
            walk(value, path, out);
            path.truncate(length);
        }
    }
    let mut out = Vec::new();
    for patch in patches {
        walk(patch, &mut String::new(), &mut out);
    }
    const SHOWN: usize = 5;
    if out.len() > SHOWN {
        let more = out.len() - SHOWN;
        out.truncate(SHOWN);
        out.push(format!("and {more} more"));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(yaml: &str) -> Vec<Operation> {
        let raw: Vec<RawOperation> = serde_yaml_ng::from_str(yaml).unwrap();
        raw.into_iter().enumerate().map(|(i, r)| Operation::new(i + 1, r).unwrap()).collect()
    }

    #[test]
    fn operations_apply_in_order_and_describe_themselves() {
        let mut deployment = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web"}]}}}});
        let patch = operations(
            "- {operation: replace, path: /spec/replicas, value: '3'}\n\
             - {operation: copy, from: /spec/template/spec/containers/0, path: /spec/template/spec/containers/-}\n\
             - {operation: add, path: /spec/paused, value: true}",
        );
        let summary = apply_json_patch(&patch, &mut deployment).unwrap().unwrap();
        assert_eq!(deployment["spec"]["replicas"], json!(3));
        assert_eq!(deployment["spec"]["paused"], json!(true));
        assert_eq!(deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(
            summary,
            "replace /spec/replicas, copy /spec/template/spec/containers/0 to /spec/template/spec/containers/-, \
             add /spec/paused"
        );
    }

    #[test]
    fn a_failing_operation_leaves_the_object_unchanged_and_says_why() {
        let mut pvc = json!({"spec": {"storageClassName": "gp2"}});
        let patch = operations(
            "- {operation: replace, path: /spec/storageClassName, value: gp3}\n\
             - {operation: remove, path: /spec/volumeName}",
        );
        let error = apply_json_patch(&patch, &mut pvc).unwrap_err();
        assert_eq!(error, "remove /spec/volumeName: path is invalid");
        assert_eq!(pvc, json!({"spec": {"storageClassName": "gp2"}}));
    }

    #[test]
    fn a_test_under_an_absent_parent_is_an_error_not_a_skip() {
        let mut pvc = json!({"spec": {}});
        let patch = operations("- {operation: test, path: /status/phase, value: Bound}");
        assert!(apply_json_patch(&patch, &mut pvc).unwrap_err().contains("a parent of that place is absent"));
    }

    #[test]
    fn patch_data_must_be_a_mapping() {
        let data = |text: &str| patch_data("merge patch 1", RawPatchData { patch_data: Some(text.to_owned()) });
        assert_eq!(data("spec: {replicas: 2}").unwrap(), json!({"spec": {"replicas": 2}}));
        assert_eq!(data(r#"{"spec": {"replicas": 2}}"#).unwrap(), json!({"spec": {"replicas": 2}}));
        assert!(
            matches!(data("- a"), Err(RuleProblem::PatchData { problem, .. }) if problem.ends_with("not a mapping"))
        );
        assert!(matches!(data(""), Err(RuleProblem::PatchData { problem, .. }) if problem == "it is empty"));
        assert!(matches!(data("spec: {replicas: 2"), Err(RuleProblem::PatchData { .. })));
    }

    #[test]
    fn places_name_the_leaves_a_patch_sets() {
        let patch = json!({"metadata": {"annotations": {"a/b": null}}, "spec": {"replicas": 2, "ports": [1]}});
        assert_eq!(places(&[patch]), "/metadata/annotations/a~1b, /spec/ports, /spec/replicas");
    }
}
