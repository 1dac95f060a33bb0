//! Where the server's pods may run: a node selector and tolerations, from `cairn install`'s
//! `--node-selector KEY=VALUE,...` and `--tolerations KEY[=VALUE][:EFFECT],...` (the taint syntax of
//! `kubectl taint`), checked as the API server would check them.

use std::collections::BTreeMap;

use cairn_kube::names::{is_label_value, is_qualified_name};
use k8s_openapi::api::core::v1::Toleration;

use super::InstallError;

/// The effects a taint, and so a toleration, can name.
const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Where the server's pods may run. [`Default`]: any node without taints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scheduling {
    /// Node labels a node must carry.
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    pub tolerations: Vec<Toleration>,
}

impl Scheduling {
    /// Reads `--node-selector` and `--tolerations`.
    pub fn parse(node_selector: Option<&str>, tolerations: Option<&str>) -> Result<Scheduling, InstallError> {
        let mut scheduling = Scheduling::default();
        for entry in entries(node_selector) {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            let (key, value) = (key.trim(), value.trim());
            if !entry.contains('=') || !is_qualified_name(key) || !is_label_value(value) {
                return Err(InstallError::NodeSelector(entry.to_owned()));
            }
            if scheduling.node_selector.insert(key.to_owned(), value.to_owned()).is_some() {
                return Err(InstallError::NodeSelector(format!("{key} given twice")));
            }
        }
        for entry in entries(tolerations) {
            scheduling.tolerations.push(toleration(entry)?);
        }
        Ok(scheduling)
    }
}

fn entries(text: Option<&str>) -> impl Iterator<Item = &str> {
    text.unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `KEY[=VALUE][:EFFECT]`: with a value the toleration matches taints with that value (`Equal`), without one
/// any value (`Exists`); without an effect it tolerates every effect.
fn toleration(entry: &str) -> Result<Toleration, InstallError> {
    let refuse = || InstallError::Toleration(entry.to_owned());
    let (taint, effect) = match entry.rsplit_once(':') {
        Some((taint, effect)) => (taint, Some(effect)),
        None => (entry, None),
    };
    if effect.is_some_and(|e| !EFFECTS.contains(&e)) {
        return Err(refuse());
    }
    let (key, value) = match taint.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (taint, None),
    };
    if !is_qualified_name(key) || value.is_some_and(|v| v.is_empty() || !is_label_value(v)) {
        return Err(refuse());
    }
    Ok(Toleration {
        key: Some(key.to_owned()),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.to_owned()),
        value: value.map(str::to_owned),
        effect: effect.map(str::to_owned),
        toleration_seconds: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_read_the_taint_syntax() {
        let scheduling =
            Scheduling::parse(None, Some("cairn.dev/test-node=real:NoSchedule, dedicated, gpu:NoExecute")).unwrap();
        let [exact, any, effect] = scheduling.tolerations.as_slice() else { panic!("{scheduling:?}") };
        assert_eq!(
            (exact.key.as_deref(), exact.operator.as_deref(), exact.value.as_deref(), exact.effect.as_deref()),
            (Some("cairn.dev/test-node"), Some("Equal"), Some("real"), Some("NoSchedule"))
        );
        assert_eq!((any.operator.as_deref(), any.effect.as_deref()), (Some("Exists"), None));
        assert_eq!((effect.key.as_deref(), effect.effect.as_deref()), (Some("gpu"), Some("NoExecute")));
    }

    #[test]
    fn bad_tolerations_and_selectors_are_refused_naming_the_entry() {
        for bad in ["a:NoRun", "a=:NoSchedule", "bad key", "=x", "a=b c"] {
            let error = Scheduling::parse(None, Some(bad)).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")) && error.contains("KEY[=VALUE][:EFFECT]"), "{error}");
        }
        for bad in ["disk", "disk=ssd fast", "Bad/x=1"] {
            let error = Scheduling::parse(Some(bad), None).unwrap_err().to_string();
            assert!(error.contains("--node-selector"), "{error}");
        }
        assert!(Scheduling::parse(Some("a=1,a=2"), None).unwrap_err().to_string().contains("twice"));
        let selector = Scheduling::parse(Some("kubernetes.io/os=linux,disk="), None).unwrap().node_selector;
        assert_eq!(selector, BTreeMap::from([("kubernetes.io/os".into(), "linux".into()), ("disk".into(), "".into())]));
    }
}
