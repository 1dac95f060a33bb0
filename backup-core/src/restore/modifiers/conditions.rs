//! Which objects a rule changes: Velero's `conditions`, read and checked, then matched against objects.
//!
//! An object matches when every condition given holds: its group-resource matches the `groupResource` glob
//! (`.` separates parts, see `glob.rs`); its namespace matches one of the `namespaces` globs (none, or `*`,
//! means all; objects without a namespace always pass, and the namespace is the one in the backup, before
//! any mapping); its name contains a match of `resourceNameRegex` (unanchored, as Go's `MatchString`); its
//! labels satisfy `labelSelector`; and each of `matches` holds as a JSON patch `test` would (a place that is
//! absent, or under an absent parent, does not match).

use std::collections::BTreeMap;

use cairn_kube::{
    names::{is_label_value, is_qualified_name},
    selectors::LabelMatcher,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::{
    error::RuleProblem,
    glob::Glob,
    pointer::{self, Pointer, Test},
    value,
};

/// `conditions` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawConditions {
    group_resource: Option<String>,
    resource_name_regex: Option<String>,
    namespaces: Option<Vec<String>>,
    label_selector: Option<RawSelector>,
    matches: Option<Vec<RawMatch>>,
}

/// `labelSelector` as written (Kubernetes' `LabelSelector`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSelector {
    match_labels: Option<BTreeMap<String, String>>,
    match_expressions: Option<Vec<RawRequirement>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    key: String,
    operator: String,
    values: Option<Vec<String>>,
}

/// One of `matches` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    path: Option<String>,
    value: Option<Value>,
}

impl RawConditions {
    /// The `groupResource` as written, if any.
    pub(super) fn group_resource(&self) -> Option<&str> {
        self.group_resource.as_deref().filter(|g| !g.is_empty())
    }
}

/// Checked conditions.
#[derive(Debug, Clone)]
pub(super) struct Conditions {
    group_resource: Glob,
    /// Empty: every namespace.
    namespaces: Vec<Glob>,
    name: Option<Regex>,
    labels: Option<LabelMatcher>,
    matches: Vec<(Pointer, Value)>,
}

impl Conditions {
    /// Checks `raw`, refusing what Velero would refuse or fail on later.
    pub(super) fn new(raw: RawConditions) -> Result<Conditions, RuleProblem> {
        let pattern = raw.group_resource().ok_or(RuleProblem::NoGroupResource)?;
        let group_resource = Glob::new(pattern, Some('.'))
            .map_err(|problem| RuleProblem::GroupResource { pattern: pattern.to_owned(), problem })?;
        let namespaces = raw.namespaces.unwrap_or_default();
        let namespaces = if namespaces.iter().any(|n| n == "*") {
            Vec::new()
        } else {
            namespaces
                .iter()
                .map(|n| Glob::new(n, None).map_err(|problem| RuleProblem::Namespace { pattern: n.clone(), problem }))
                .collect::<Result<_, _>>()?
        };
        let name = match raw.resource_name_regex.filter(|r| !r.is_empty()) {
            None => None,
            Some(regex) => Some(Regex::new(&regex).map_err(|e| RuleProblem::NameRegex {
                problem: e.to_string().lines().last().unwrap_or_default().trim().to_owned(),
                regex,
            })?),
        };
        let labels = raw.label_selector.map(label_matcher).transpose().map_err(RuleProblem::LabelSelector)?;
        let matches = raw
            .matches
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let place = format!("match {}", i + 1);
                let path = m.path.unwrap_or_default();
                let pointer = Pointer::parse(&path).map_err(|problem| RuleProblem::Pointer {
                    place: format!("{place} path"),
                    path,
                    problem,
                })?;
                let expected = value::read(m.value.as_ref()).map_err(|problem| RuleProblem::Value {
                    place,
                    value: written(m.value.as_ref()),
                    problem,
                })?;
                Ok((pointer, expected))
            })
            .collect::<Result<_, _>>()?;
        Ok(Conditions { group_resource, namespaces, name, labels, matches })
    }

    /// Conditions that only name group-resources (a glob, such as `{pods,jobs.batch}`).
    pub(super) fn group_resources(pattern: &str) -> Conditions {
        Conditions {
            group_resource: Glob::new(pattern, Some('.')).expect("Cairn's own group-resource globs are valid"),
            namespaces: Vec::new(),
            name: None,
            labels: None,
            matches: Vec::new(),
        }
    }

    /// Whether `object`, of `group_resource`, meets every condition. An error is a `matches` entry that
    /// cannot be evaluated on this object (an index that is not a number, or past the end of a list).
    pub(super) fn matches(&self, group_resource: &str, object: &Value) -> Result<bool, String> {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        if !namespace.is_empty() && !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n.matches(namespace))
        {
            return Ok(false);
        }
        if !self.group_resource.matches(group_resource) {
            return Ok(false);
        }
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        if self.name.as_ref().is_some_and(|regex| !regex.is_match(name)) {
            return Ok(false);
        }
        if let Some(selector) = &self.labels {
            let labels = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|labels| labels.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
                .unwrap_or_default();
            if !selector.matches(&labels) {
                return Ok(false);
            }
        }
        for (i, (pointer, expected)) in self.matches.iter().enumerate() {
            match pointer::test(object, pointer, expected).map_err(|e| format!("match {}: {e}", i + 1))? {
                Test::Passed => {}
                Test::Failed | Test::Missing => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// A value as written, for error messages.
pub(super) fn written(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => format!("{text:?}"),
        Some(other) => other.to_string(),
        None => "(none)".to_owned(),
    }
}

/// Checks a selector as Kubernetes does (keys, values, operators) and compiles it.
fn label_matcher(raw: RawSelector) -> Result<LabelMatcher, String> {
    let check_key = |key: &str| {
        if is_qualified_name(key) { Ok(()) } else { Err(format!("{key:?} is not a valid label key")) }
    };
    let check_value = |value: &str| {
        if is_label_value(value) {
            Ok(())
        } else {
            Err(format!("{value:?} is not a valid label value (at most 63 letters, digits, '-', '_' or '.')"))
        }
    };
    for (key, value) in raw.match_labels.iter().flatten() {
        check_key(key)?;
        check_value(value)?;
    }
    let mut requirements = Vec::new();
    for requirement in raw.match_expressions.into_iter().flatten() {
        check_key(&requirement.key)?;
        let values = requirement.values.unwrap_or_default();
        values.iter().try_for_each(|v| check_value(v))?;
        match (requirement.operator.as_str(), values.is_empty()) {
            ("In" | "NotIn", false) | ("Exists" | "DoesNotExist", true) => {}
            ("In" | "NotIn", true) => {
                return Err(format!("{} {} needs values", requirement.key, requirement.operator));
            }
            ("Exists" | "DoesNotExist", false) => {
                return Err(format!("{} {} takes no values", requirement.key, requirement.operator));
            }
            (other, _) => {
                return Err(format!("operator {other:?} is not In, NotIn, Exists or DoesNotExist"));
            }
        }
        requirements.push(LabelSelectorRequirement {
            key: requirement.key,
            operator: requirement.operator,
            values: (!values.is_empty()).then_some(values),
        });
    }
    let selector = LabelSelector {
        match_labels: raw.match_labels,
        match_expressions: (!requirements.is_empty()).then_some(requirements),
    };
    LabelMatcher::new(&selector).map_err(|e| e.problem)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conditions(yaml: &str) -> Conditions {
        Conditions::new(serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    fn refusal(yaml: &str) -> RuleProblem {
        Conditions::new(serde_yaml_ng::from_str(yaml).unwrap()).unwrap_err()
    }

    fn pvc(namespace: &str, name: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"namespace": namespace, "name": name, "labels": labels},
            "spec": {"storageClassName": "gp2"}
        })
    }

    #[test]
    fn group_resource_matches_exactly_or_by_glob() {
        let object = pvc("shop", "data", json!({}));
        assert_eq!(
            conditions("groupResource: persistentvolumeclaims").matches("persistentvolumeclaims", &object),
            Ok(true)
        );
        assert_eq!(
            conditions("groupResource: persistentvolumeclaims").matches("persistentvolumes", &object),
            Ok(false)
        );
        assert_eq!(conditions("groupResource: '*.apps'").matches("deployments.apps", &object), Ok(true));
        assert_eq!(conditions("groupResource: '*'").matches("deployments.apps", &object), Ok(false));
    }

    #[test]
    fn namespaces_match_by_glob_and_never_exclude_cluster_scoped_objects() {
        let rule = conditions("{groupResource: '**', namespaces: [shop, 'team-*']}");
        assert_eq!(rule.matches("persistentvolumeclaims", &pvc("shop", "data", json!({}))), Ok(true));
        assert_eq!(rule.matches("persistentvolumeclaims", &pvc("team-a", "data", json!({}))), Ok(true));
        assert_eq!(rule.matches("persistentvolumeclaims", &pvc("other", "data", json!({}))), Ok(false));
        let pv = json!({"metadata": {"name": "pv-1"}});
        assert_eq!(rule.matches("persistentvolumes", &pv), Ok(true));
        let everywhere = conditions("{groupResource: '**', namespaces: ['*']}");
        assert_eq!(everywhere.matches("persistentvolumeclaims", &pvc("other", "data", json!({}))), Ok(true));
    }

    #[test]
    fn resource_name_regex_is_searched_not_anchored() {
        let object = pvc("shop", "mysql-data", json!({}));
        assert_eq!(conditions("{groupResource: '*', resourceNameRegex: '^mysql'}").matches("pods", &object), Ok(true));
        assert_eq!(conditions("{groupResource: '*', resourceNameRegex: 'data'}").matches("pods", &object), Ok(true));
        assert_eq!(conditions("{groupResource: '*', resourceNameRegex: '^data'}").matches("pods", &object), Ok(false));
    }

    #[test]
    fn label_selectors_match_labels_and_expressions() {
        let rule = conditions(
            "groupResource: '*'\nlabelSelector:\n  matchLabels: {app: db}\n  matchExpressions:\n  \
             - {key: tier, operator: In, values: [gold, silver]}\n  - {key: legacy, operator: DoesNotExist}",
        );
        assert_eq!(rule.matches("pods", &pvc("a", "b", json!({"app": "db", "tier": "gold"}))), Ok(true));
        assert_eq!(rule.matches("pods", &pvc("a", "b", json!({"app": "db", "tier": "bronze"}))), Ok(false));
        assert_eq!(rule.matches("pods", &pvc("a", "b", json!({"app": "web", "tier": "gold"}))), Ok(false));
        assert_eq!(rule.matches("pods", &pvc("a", "b", json!({"app": "db", "tier": "gold", "legacy": ""}))), Ok(false));
    }

    #[test]
    fn matches_test_values_at_json_pointers() {
        let object = pvc("shop", "data", json!({}));
        let rule = conditions("{groupResource: '*', matches: [{path: /spec/storageClassName, value: gp2}]}");
        assert_eq!(rule.matches("pods", &object), Ok(true));
        let rule = conditions("{groupResource: '*', matches: [{path: /spec/storageClassName, value: gp3}]}");
        assert_eq!(rule.matches("pods", &object), Ok(false));
        let rule = conditions("{groupResource: '*', matches: [{path: /status/phase, value: Bound}]}");
        assert_eq!(rule.matches("pods", &object), Ok(false));
    }

    #[test]
    fn invalid_conditions_are_refused_with_the_problem() {
        assert_eq!(refusal("resourceNameRegex: x"), RuleProblem::NoGroupResource);
        assert!(matches!(refusal("groupResource: '{pods'"), RuleProblem::GroupResource { .. }));
        assert!(matches!(refusal("{groupResource: pods, namespaces: ['[a']}"), RuleProblem::Namespace { .. }));
        assert!(matches!(refusal("{groupResource: pods, resourceNameRegex: '(a'}"), RuleProblem::NameRegex { .. }));
        let selector = refusal("{groupResource: pods, labelSelector: {matchExpressions: [{key: a, operator: In}]}}");
        assert_eq!(selector, RuleProblem::LabelSelector("a In needs values".to_owned()));
        let selector = refusal("{groupResource: pods, labelSelector: {matchLabels: {app: 'a b'}}}");
        assert!(matches!(selector, RuleProblem::LabelSelector(p) if p.contains("not a valid label value")));
        let selector = refusal("{groupResource: pods, labelSelector: {matchExpressions: [{key: a, operator: Is}]}}");
        assert!(matches!(selector, RuleProblem::LabelSelector(p) if p.contains("\"Is\"")));
        let path = refusal("{groupResource: pods, matches: [{path: spec/x, value: y}]}");
        assert!(matches!(path, RuleProblem::Pointer { place, .. } if place == "match 1 path"));
    }
}
