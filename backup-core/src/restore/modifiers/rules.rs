//! Velero's resource modifiers document (`version: v1`, `resourceModifierRules`), read and checked into
//! rules. Every refusal happens here, before anything is restored: unknown fields, a version other than v1,
//! no rules, and per rule a missing `conditions.groupResource`, no patches or several kinds of them (Velero
//! takes one of `patches`, `mergePatches` and `strategicPatches`), and anything in its conditions or
//! patches that could not be used.

use serde::Deserialize;
use serde_json::Value;

use super::{
    conditions::{Conditions, RawConditions},
    error::{ModifierError, RuleProblem},
    patches::{self, Operation, RawOperation, RawPatchData},
    renames::{ImageNames, StorageClasses},
    strategic,
};

/// The document as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDocument {
    version: Option<String>,
    resource_modifier_rules: Option<Vec<RawRule>>,
}

/// One of `resourceModifierRules` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    conditions: Option<RawConditions>,
    patches: Option<Vec<RawOperation>>,
    merge_patches: Option<Vec<RawPatchData>>,
    strategic_patches: Option<Vec<RawPatchData>>,
}

/// A checked rule: which objects, and what to do to them.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    /// How descriptions and errors name it: `rule 2 (persistentvolumeclaims)`.
    pub(super) name: String,
    /// Which objects it changes.
    pub(super) conditions: Conditions,
    /// What it does to them.
    pub(super) action: Action,
}

/// What a rule does to the objects it matches.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// RFC 6902 operations, all or nothing.
    JsonPatch(Vec<Operation>),
    /// RFC 7386 merge patches, in order.
    MergePatches(Vec<Value>),
    /// Strategic merge patches, in order.
    StrategicPatches(Vec<Value>),
    /// The storage class plugin's mapping.
    StorageClasses(StorageClasses),
    /// The image name plugin's mapping.
    ImageNames(ImageNames),
}

/// Reads and checks a document, YAML or JSON.
pub(super) fn read(document: &str) -> Result<Vec<Rule>, ModifierError> {
    let raw: RawDocument = if document.trim_start().starts_with('{') {
        serde_json::from_str(document).map_err(|e| ModifierError::Document(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(document).map_err(|e| ModifierError::Document(e.to_string()))?
    };
    let version = raw.version.unwrap_or_default();
    if !version.eq_ignore_ascii_case("v1") {
        return Err(ModifierError::Version(version));
    }
    let rules = raw.resource_modifier_rules.unwrap_or_default();
    if rules.is_empty() {
        return Err(ModifierError::NoRules);
    }
    rules.into_iter().enumerate().map(|(i, raw)| Rule::new(i + 1, raw)).collect()
}

impl Rule {
    fn new(number: usize, mut raw: RawRule) -> Result<Rule, ModifierError> {
        let conditions = raw.conditions.take().unwrap_or_default();
        let touches = conditions.group_resource().unwrap_or("no groupResource").to_owned();
        let refuse = |problem| ModifierError::Rule { number, touches: touches.clone(), problem };
        let conditions = Conditions::new(conditions).map_err(refuse)?;
        let action = action(raw).map_err(refuse)?;
        Ok(Rule { name: format!("rule {number} ({touches})"), conditions, action })
    }
}

fn action(raw: RawRule) -> Result<Action, RuleProblem> {
    let patches = raw.patches.unwrap_or_default();
    let merge_patches = raw.merge_patches.unwrap_or_default();
    let strategic_patches = raw.strategic_patches.unwrap_or_default();
    let kinds: Vec<&str> = [
        ("patches", patches.is_empty()),
        ("mergePatches", merge_patches.is_empty()),
        ("strategicPatches", strategic_patches.is_empty()),
    ]
    .into_iter()
    .filter_map(|(kind, empty)| (!empty).then_some(kind))
    .collect();
    match kinds.len() {
        0 => return Err(RuleProblem::NoPatches),
        1 => {}
        _ => return Err(RuleProblem::SeveralPatchKinds(kinds.join(" and "))),
    }
    if !patches.is_empty() {
        let operations = patches.into_iter().enumerate().map(|(i, raw)| Operation::new(i + 1, raw));
        return Ok(Action::JsonPatch(operations.collect::<Result<_, _>>()?));
    }
    if !merge_patches.is_empty() {
        let data = merge_patches.into_iter().enumerate();
        let data = data.map(|(i, raw)| patches::patch_data(&format!("merge patch {}", i + 1), raw));
        return Ok(Action::MergePatches(data.collect::<Result<_, _>>()?));
    }
    let data = strategic_patches.into_iter().enumerate().map(|(i, raw)| {
        let place = format!("strategic patch {}", i + 1);
        let data = patches::patch_data(&place, raw)?;
        strategic::check(&place, &data)?;
        Ok(data)
    });
    Ok(Action::StrategicPatches(data.collect::<Result<_, _>>()?))
}

impl Action {
    /// Applies the action to `object` (of `group_resource`): `Some(summary)` when it changed or patched
    /// it, `None` when it did not apply (a failed `test`, nothing to rename). On an error the object is
    /// unchanged.
    pub(super) fn apply(&self, group_resource: &str, object: &mut Value) -> Result<Option<String>, String> {
        match self {
            Action::JsonPatch(operations) => patches::apply_json_patch(operations, object),
            Action::MergePatches(data) => Ok(Some(patches::apply_merge_patches(data, object))),
            Action::StrategicPatches(data) => strategic::apply_strategic_patches(data, object).map(Some),
            Action::StorageClasses(classes) => Ok(classes.apply(group_resource, object)),
            Action::ImageNames(names) => Ok(names.apply(group_resource, object)),
        }
    }
}
