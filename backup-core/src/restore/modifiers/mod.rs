//! Resource modifiers: Velero's rules (v1.12+) that rewrite objects on their way into the cluster, read from
//! a ConfigMap's YAML or JSON document, and Velero's storage class and image name plugin ConfigMaps, turned
//! into rules applied the same way. Pure: no I/O.
//!
//! ```yaml
//! version: v1
//! resourceModifierRules:
//! - conditions:
//!     groupResource: persistentvolumeclaims
//!     namespaces: [shop]
//!   patches:
//!   - operation: replace
//!     path: /spec/storageClassName
//!     value: premium
//! ```
//!
//! [`parse`] reads and checks a document, so that a restore refuses bad modifiers before it restores
//! anything; [`Modifiers::apply`] changes one object. `rules.rs` reads the document; `conditions.rs` (with
//! `glob.rs`) decides which objects a rule changes; `patches.rs` (with `pointer.rs` and `value.rs`) applies
//! JSON patches and merge patches, `strategic.rs` strategic merge patches; `shortcuts.rs` turns the plugins'
//! ConfigMaps into rules whose actions are in `renames.rs`.

mod conditions;
mod error;
mod glob;
mod patches;
mod pointer;
mod renames;
mod rules;
mod shortcuts;
mod strategic;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

pub use error::{ModifierError, RuleProblem};
pub use shortcuts::{
    CHANGE_IMAGE_NAME_LABEL, CHANGE_STORAGE_CLASS_LABEL, PLUGIN_CONFIG_LABEL, RESTORE_ITEM_ACTION, image_name_changes,
    storage_class_changes,
};

use rules::Rule;

/// Checked rules, applied in order to each object of a restore.
#[derive(Debug, Clone, Default)]
pub struct Modifiers {
    rules: Vec<Rule>,
}

/// Reads and checks a resource modifiers document (YAML, or JSON), refusing anything Velero would refuse or
/// fail on later, with the rule's number and `groupResource`.
pub fn parse(document: &str) -> Result<Modifiers, ModifierError> {
    Ok(Modifiers { rules: rules::read(document)? })
}

/// Reads the data of the ConfigMap a restore names for its resource modifiers, which must hold exactly one
/// entry (any key), the document.
pub fn parse_config_map(data: &BTreeMap<String, String>) -> Result<Modifiers, ModifierError> {
    match data.values().collect::<Vec<_>>().as_slice() {
        [document] => parse(document),
        entries => Err(ModifierError::ConfigMapEntries(entries.len())),
    }
}

impl Modifiers {
    /// Whether there are no rules (an empty plugin ConfigMap).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule whose conditions `object` (of `group_resource`: `pods`, `deployments.apps`) meets,
    /// in order, and describes each rule that applied: `rule 2 (persistentvolumeclaims): replace
    /// /spec/storageClassName`.
    ///
    /// Velero's semantics: every rule's conditions are matched against the object as it came in, not as
    /// earlier rules left it (a `test` inside a rule's patches sees the rule's own earlier operations). A
    /// rule whose `test` fails is not applied and is no error. A rule that fails (an operation that cannot
    /// apply, a strategic patch on a kind without a known schema, a `matches` entry that cannot be evaluated)
    /// changes nothing, and the other rules still apply; the error lists every failed rule, and `object`
    /// then holds the changes of the rules that applied. Velero restores the object anyway and counts each
    /// error against the restore (PartiallyFailed).
    ///
    /// Call it where Velero does: on the object as archived, with its server-set metadata and status
    /// already removed, after the plugin rules ([`storage_class_changes`], [`image_name_changes`]) and
    /// before the object moves to a mapped namespace (the `namespaces` condition names the backup's
    /// namespaces).
    pub fn apply(&self, group_resource: &str, object: &mut Value) -> Result<Vec<String>, String> {
        let original = (self.rules.len() > 1).then(|| object.clone());
        let mut applied = Vec::new();
        let mut errors = Vec::new();
        for rule in &self.rules {
            match rule.conditions.matches(group_resource, original.as_ref().unwrap_or(object)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    errors.push(format!("{}: {e}", rule.name));
                    continue;
                }
            }
            match rule.action.apply(group_resource, object) {
                Ok(Some(summary)) => applied.push(format!("{}: {summary}", rule.name)),
                Ok(None) => {}
                Err(e) => errors.push(format!("{}: {e}", rule.name)),
            }
        }
        if errors.is_empty() { Ok(applied) } else { Err(errors.join("; ")) }
    }
}
