//! Selection: which namespaces, resource types and objects a backup or restore takes, with Velero's meaning
//! (namespace globs, resource names in any of their spellings, label selectors, the cluster-scope tri-state,
//! the exclude-from-backup label).

use std::collections::{BTreeMap, BTreeSet};

use cairn_api::SelectionSpec;
use glob::Pattern;

pub use cairn_kube::selectors::parse_label_selector;
use cairn_kube::{
    discovery::{Discovery, ResourceType},
    selectors::{LabelMatcher, SelectorError},
};

/// Labels that keep an object, or every object of a namespace, out of backups when set to `true`.
pub const EXCLUDE_LABELS: [&str; 2] = ["cairn.dev/exclude-from-backup", "velero.io/exclude-from-backup"];

/// A selection that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// A label selector could not be read.
    #[error(transparent)]
    LabelSelector(#[from] SelectorError),
    /// Both a label selector and or-selectors were given.
    #[error("a label selector and or-label-selectors cannot be combined; use one of them")]
    BothSelectors,
    /// A namespace pattern is not a valid glob.
    #[error("invalid namespace pattern {pattern:?}: {problem}; use a name or a glob such as team-*")]
    NamespacePattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A namespace filter: included globs (empty = all) minus excluded globs.
#[derive(Debug, Clone)]
struct NamespaceFilter {
    included: Vec<Pattern>,
    excluded: Vec<Pattern>,
    everything: bool,
}

impl NamespaceFilter {
    fn new(included: &[String], excluded: &[String]) -> Result<Self, SelectionError> {
        let compile = |patterns: &[String]| {
            patterns
                .iter()
                .map(|p| {
                    Pattern::new(p.trim())
                        .map_err(|e| SelectionError::NamespacePattern { pattern: p.clone(), problem: e.msg.to_owned() })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let all = included.is_empty() || included.iter().any(|p| p.trim() == "*");
        Ok(NamespaceFilter {
            included: if all { Vec::new() } else { compile(included)? },
            excluded: compile(excluded)?,
            everything: all && excluded.is_empty(),
        })
    }

    fn includes(&self, namespace: &str) -> bool {
        (self.included.is_empty() || self.included.iter().any(|p| p.matches(namespace)))
            && !self.excluded.iter().any(|p| p.matches(namespace))
    }

    /// The included names when every included entry is a plain name, not a glob.
    fn exact_names(&self) -> Option<Vec<String>> {
        if self.included.is_empty() {
            return None;
        }
        let plain = |p: &Pattern| !p.as_str().contains(['*', '?', '[']);
        self.included
            .iter()
            .all(plain)
            .then(|| self.included.iter().map(|p| p.as_str().to_owned()).filter(|n| self.includes(n)).collect())
    }
}

/// How objects are matched by label.
#[derive(Debug, Clone)]
enum LabelFilter {
    Everything,
    One(LabelMatcher),
    AnyOf(Vec<LabelMatcher>),
}

/// A selection compiled against a server's discovery.
#[derive(Debug, Clone)]
pub struct Selection {
    namespaces: NamespaceFilter,
    /// Included group-resources; `None` means all.
    included_types: Option<BTreeSet<String>>,
    excluded_types: BTreeSet<String>,
    labels: LabelFilter,
    include_cluster_resources: Option<bool>,
    /// Filter entries that name no served type.
    pub unknown_resources: Vec<String>,
}

impl Selection {
    /// Compiles `spec`, resolving resource names against `discovery`. Unknown resource names are kept in
    /// [`Selection::unknown_resources`] (a warning, not an error, as in Velero).
    pub fn compile(spec: &SelectionSpec, discovery: &Discovery) -> Result<Selection, SelectionError> {
        let labels = match (&spec.label_selector, spec.or_label_selectors.as_slice()) {
            (Some(_), [_, ..]) => return Err(SelectionError::BothSelectors),
            (Some(one), []) => LabelFilter::One(LabelMatcher::new(one)?),
            (None, []) => LabelFilter::Everything,
            (None, many) => LabelFilter::AnyOf(many.iter().map(LabelMatcher::new).collect::<Result<_, _>>()?),
        };
        let mut unknown_resources = Vec::new();
        let mut resolve = |names: &[String]| -> Option<BTreeSet<String>> {
            if names.is_empty() || names.iter().any(|n| n.trim() == "*") {
                return None;
            }
            let mut resolved = BTreeSet::new();
            for name in names {
                match resolve_type(name.trim(), discovery) {
                    Some(t) => {
                        resolved.insert(t.group_resource());
                    }
                    None => unknown_resources.push(name.clone()),
                }
            }
            Some(resolved)
        };
        let included_types = resolve(&spec.included_resources);
        let excluded_types = if spec.excluded_resources.iter().any(|n| n.trim() == "*") {
            discovery.types.iter().map(ResourceType::group_resource).collect()
        } else {
            resolve(&spec.excluded_resources).unwrap_or_default()
        };
        Ok(Selection {
            namespaces: NamespaceFilter::new(&spec.included_namespaces, &spec.excluded_namespaces)?,
            included_types,
            excluded_types,
            labels,
            include_cluster_resources: spec.include_cluster_resources,
            unknown_resources,
        })
    }

    /// Whether objects in `namespace` are selected (by name; the exclude label is checked separately).
    pub fn includes_namespace(&self, namespace: &str) -> bool {
        self.namespaces.includes(namespace)
    }

    /// Whether every namespace is selected.
    pub fn all_namespaces(&self) -> bool {
        self.namespaces.everything
    }

    /// The selected namespaces when they were named one by one (no globs): they can be listed directly.
    pub fn exact_namespaces(&self) -> Option<Vec<String>> {
        self.namespaces.exact_names()
    }

    /// The namespaces of `existing` the selection takes, when it names which to include (by name or glob);
    /// `None` when it includes every namespace (perhaps minus some excluded).
    pub fn matching_namespaces(&self, existing: &[String]) -> Option<Vec<String>> {
        if self.namespaces.included.is_empty() {
            return None;
        }
        Some(existing.iter().filter(|n| self.namespaces.includes(n)).cloned().collect())
    }

    /// Whether the resource filters allow `resource_type`, leaving scope aside.
    pub fn includes_resource(&self, resource_type: &ResourceType) -> bool {
        self.includes_group_resource(&resource_type.group_resource())
    }

    /// Whether the resource filters allow the type named `group_resource` (`deployments.apps`).
    pub fn includes_group_resource(&self, group_resource: &str) -> bool {
        self.included_types.as_ref().is_none_or(|set| set.contains(group_resource))
            && !self.excluded_types.contains(group_resource)
    }

    /// The cluster-scope tri-state as given.
    pub fn include_cluster_resources(&self) -> Option<bool> {
        self.include_cluster_resources
    }

    /// Whether every object of `resource_type` is a candidate: the resource filters allow it, and a
    /// cluster-scoped type is allowed by the cluster-scope tri-state. Namespace objects follow their
    /// namespace's selection instead.
    pub fn includes_type(&self, resource_type: &ResourceType) -> bool {
        if !self.includes_resource(resource_type) {
            return false;
        }
        if resource_type.namespaced || is_namespace_type(resource_type) {
            return true;
        }
        match self.include_cluster_resources {
            Some(include) => include,
            None => self.all_namespaces(),
        }
    }

    /// Whether a cluster-scoped object related to a selected one (a PVC's PV, a ServiceAccount's
    /// ClusterRoleBinding, a custom resource's CRD) comes along: unless cluster resources are switched off
    /// or its type is excluded.
    pub fn includes_related(&self, resource_type: &ResourceType) -> bool {
        self.include_cluster_resources != Some(false) && !self.excluded_types.contains(&resource_type.group_resource())
    }

    /// Whether a listed object is selected: not labelled to be excluded, in a selected namespace that does
    /// not exclude itself (`excluded_namespaces`), and matching the label selectors. A namespace is judged
    /// by its own name; its labels do not need to match.
    pub fn selects_listed(
        &self,
        is_namespace: bool,
        namespace: Option<&str>,
        name: &str,
        labels: &BTreeMap<String, String>,
        excluded_namespaces: &BTreeSet<String>,
    ) -> bool {
        if excluded_by_label(labels) {
            return false;
        }
        if is_namespace {
            return self.includes_namespace(name) && !excluded_namespaces.contains(name);
        }
        if let Some(ns) = namespace
            && (!self.includes_namespace(ns) || excluded_namespaces.contains(ns))
        {
            return false;
        }
        self.labels_match(labels)
    }

    /// Whether a stored object (by its path in an archive) is selected by namespace, type and the
    /// cluster-scope rule: with some namespaces selected and cluster resources unset, only the CRDs and
    /// volumes their objects need come along (Velero's rule).
    pub fn includes_stored(&self, item: &crate::archive::ItemPath) -> bool {
        use cairn_kube::resources::{CRDS, NAMESPACES, PVS};
        if !self.includes_group_resource(&item.group_resource) {
            return false;
        }
        match &item.namespace {
            Some(ns) => self.includes_namespace(ns),
            None if item.group_resource == NAMESPACES => self.includes_namespace(&item.name),
            None => match self.include_cluster_resources() {
                Some(include) => include,
                None => self.all_namespaces() || item.group_resource == CRDS || item.group_resource == PVS,
            },
        }
    }

    /// Whether an object's labels satisfy the label selection.
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.labels {
            LabelFilter::Everything => true,
            LabelFilter::One(matcher) => matcher.matches(labels),
            LabelFilter::AnyOf(matchers) => matchers.iter().any(|m| m.matches(labels)),
        }
    }

    /// The selector the API server can apply while listing (only for a single selector; or-selectors are
    /// matched here).
    pub fn server_label_selector(&self) -> Option<String> {
        match &self.labels {
            LabelFilter::One(matcher) => Some(matcher.query()),
            _ => None,
        }
    }
}

/// Whether `labels` carry an exclude-from-backup label set to `true`.
pub fn excluded_by_label(labels: &BTreeMap<String, String>) -> bool {
    EXCLUDE_LABELS.iter().any(|key| labels.get(*key).is_some_and(|v| v == "true"))
}

/// Whether the type is core `namespaces`.
pub fn is_namespace_type(resource_type: &ResourceType) -> bool {
    resource_type.group.is_empty() && resource_type.resource == "namespaces"
}

/// Finds the served type a filter entry names: `resource.group`, the plural, the singular, a short name or
/// the kind, case-insensitively; `resource.group` may name the group partially (`deployments.apps`).
fn resolve_type<'d>(name: &str, discovery: &'d Discovery) -> Option<&'d ResourceType> {
    let name = name.to_ascii_lowercase();
    let (head, group) = match name.split_once('.') {
        Some((head, group)) => (head.to_owned(), Some(group.to_owned())),
        None => (name.clone(), None),
    };
    let spelled = |t: &ResourceType| {
        t.resource == head
            || t.singular == head
            || t.kind.to_ascii_lowercase() == head
            || t.short_names.iter().any(|s| s.eq_ignore_ascii_case(&head))
    };
    discovery.types.iter().find(|t| t.group_resource() == name).or_else(|| {
        discovery.types.iter().find(|t| {
            spelled(t)
                && match &group {
                    Some(group) => t.group == *group || t.group.starts_with(&format!("{group}.")),
                    None => true,
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_type(group: &str, resource: &str, kind: &str, namespaced: bool, short: &[&str]) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn discovery() -> Discovery {
        Discovery {
            types: vec![
                resource_type("", "pods", "Pod", true, &["po"]),
                resource_type("", "namespaces", "Namespace", false, &["ns"]),
                resource_type("", "persistentvolumes", "PersistentVolume", false, &["pv"]),
                resource_type("apps", "deployments", "Deployment", true, &["deploy"]),
                resource_type("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", false, &[]),
            ],
            ..Default::default()
        }
    }

    fn select(spec: SelectionSpec) -> Selection {
        Selection::compile(&spec, &discovery()).unwrap()
    }

    fn named(d: &Discovery, group_resource: &str) -> ResourceType {
        d.by_group_resource(group_resource).unwrap().clone()
    }

    #[test]
    fn resource_names_resolve_in_every_spelling() {
        let d = discovery();
        for name in ["deployments.apps", "deployments", "deployment", "deploy", "Deployment", "deployments.apps"] {
            assert_eq!(resolve_type(name, &d).unwrap().group_resource(), "deployments.apps", "{name}");
        }
        assert_eq!(resolve_type("clusterroles.rbac", &d).unwrap().resource, "clusterroles");
        assert!(resolve_type("widgets", &d).is_none());
    }

    #[test]
    fn unknown_resources_are_reported_not_fatal() {
        let selection =
            select(SelectionSpec { included_resources: vec!["pods".into(), "widgets".into()], ..Default::default() });
        assert_eq!(selection.unknown_resources, ["widgets"]);
        assert!(selection.includes_type(&named(&discovery(), "pods")));
        assert!(!selection.includes_type(&named(&discovery(), "deployments.apps")));
    }

    #[test]
    fn namespace_globs_include_and_exclude() {
        let selection = select(SelectionSpec {
            included_namespaces: vec!["team-*".into(), "shared".into()],
            excluded_namespaces: vec!["team-b*".into()],
            ..Default::default()
        });
        assert!(selection.includes_namespace("team-a"));
        assert!(selection.includes_namespace("shared"));
        assert!(!selection.includes_namespace("team-blue"));
        assert!(!selection.includes_namespace("other"));
        assert!(!selection.all_namespaces());
        assert_eq!(selection.exact_namespaces(), None);
        let existing = ["other", "shared", "team-a", "team-blue", "team-c"].map(String::from);
        assert_eq!(
            selection.matching_namespaces(&existing),
            Some(vec!["shared".into(), "team-a".into(), "team-c".into()])
        );
        let all_but = select(SelectionSpec { excluded_namespaces: vec!["team-*".into()], ..Default::default() });
        assert_eq!(all_but.matching_namespaces(&existing), None);
        let exact = select(SelectionSpec { included_namespaces: vec!["a".into(), "b".into()], ..Default::default() });
        assert_eq!(exact.exact_namespaces(), Some(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn cluster_scope_is_a_tri_state() {
        let d = discovery();
        let (pv, ns) = (named(&d, "persistentvolumes"), named(&d, "namespaces"));
        let all = select(SelectionSpec::default());
        assert!(all.includes_type(&pv), "unset with all namespaces: cluster types included");
        let some = select(SelectionSpec { included_namespaces: vec!["a".into()], ..Default::default() });
        assert!(!some.includes_type(&pv), "unset with some namespaces: only related");
        assert!(some.includes_related(&pv));
        assert!(some.includes_type(&ns), "namespace objects follow their namespace");
        let none = select(SelectionSpec { include_cluster_resources: Some(false), ..Default::default() });
        assert!(!none.includes_type(&pv) && !none.includes_related(&pv));
        let forced = select(SelectionSpec {
            included_namespaces: vec!["a".into()],
            include_cluster_resources: Some(true),
            ..Default::default()
        });
        assert!(forced.includes_type(&pv));
    }

    #[test]
    fn label_selector_and_or_selectors_cannot_be_combined() {
        let selector = parse_label_selector("app=web").unwrap();
        let spec = SelectionSpec {
            label_selector: Some(selector.clone()),
            or_label_selectors: vec![selector],
            ..Default::default()
        };
        assert!(matches!(Selection::compile(&spec, &discovery()), Err(SelectionError::BothSelectors)));
    }

    #[test]
    fn or_selectors_match_any() {
        let selection = select(SelectionSpec {
            or_label_selectors: vec![parse_label_selector("app=a").unwrap(), parse_label_selector("app=b").unwrap()],
            ..Default::default()
        });
        let labels = |v: &str| BTreeMap::from([("app".to_owned(), v.to_owned())]);
        assert!(selection.labels_match(&labels("a")) && selection.labels_match(&labels("b")));
        assert!(!selection.labels_match(&labels("c")));
        assert_eq!(selection.server_label_selector(), None);
    }

    #[test]
    fn exclude_label_must_be_true() {
        let labels = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(excluded_by_label(&labels("cairn.dev/exclude-from-backup", "true")));
        assert!(excluded_by_label(&labels("velero.io/exclude-from-backup", "true")));
        assert!(!excluded_by_label(&labels("cairn.dev/exclude-from-backup", "false")));
    }
}
