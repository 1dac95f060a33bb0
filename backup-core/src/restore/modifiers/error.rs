//! Why resource modifiers are refused: every problem is found when they are read, before anything is
//! restored, and named with the rule (numbered from 1) and what it touches.

use cairn_kube::names::NAME_RULE;

/// Resource modifiers that cannot be used; nothing was restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModifierError {
    /// The document is not YAML or JSON of Velero's shape (an unknown field, a wrong type).
    #[error(
        "the resource modifiers do not parse: {0}; write Velero's format, a YAML or JSON document with \
         `version: v1` and a list of `resourceModifierRules`"
    )]
    Document(String),
    /// The ConfigMap holds no document, or several.
    #[error(
        "the resource modifiers ConfigMap holds {0} entries; put exactly one in its data (the YAML or JSON \
         document), as Velero requires"
    )]
    ConfigMapEntries(usize),
    /// The version is not `v1`.
    #[error("resource modifiers version {0:?} is not supported; write `version: v1`, the only version Velero defines")]
    Version(String),
    /// The document has no rules.
    #[error(
        "the resource modifiers have no rules; add at least one under resourceModifierRules, or restore without \
         resource modifiers"
    )]
    NoRules,
    /// One rule cannot be used.
    #[error("resource modifier rule {number} ({touches}): {problem}")]
    Rule {
        /// The rule's position in `resourceModifierRules`, from 1.
        number: usize,
        /// What it touches: its `groupResource`.
        touches: String,
        /// What is wrong with it.
        problem: RuleProblem,
    },
    /// A storage class mapping names an invalid new storage class.
    #[error(
        "the storage class mapping {old:?}: {new:?} (velero.io/change-storage-class) names an invalid storage \
         class; {NAME_RULE}"
    )]
    StorageClass {
        /// The storage class objects have in the backup.
        old: String,
        /// The one they should get.
        new: String,
    },
    /// An image name mapping is not `old,new`.
    #[error(
        "the image name mapping {key:?}: {value:?} (velero.io/change-image-name) is not `old,new`; write the part \
         of image names to replace, a comma and its replacement, such as `docker.io/,registry.example.com/`"
    )]
    ImageName {
        /// The entry's key.
        key: String,
        /// The entry's value.
        value: String,
    },
}

/// What is wrong with one resource modifier rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// `conditions.groupResource` is missing or empty.
    #[error(
        "conditions.groupResource is missing; name the resources the rule changes, such as `pods`, \
         `deployments.apps` or `*.apps`"
    )]
    NoGroupResource,
    /// The rule has nothing to do.
    #[error("it has no patches, mergePatches or strategicPatches; give it one, or remove the rule")]
    NoPatches,
    /// The rule has two or three kinds of patches.
    #[error(
        "it has both {0}; Velero takes one kind of patch per rule, so split it into rules with the same conditions"
    )]
    SeveralPatchKinds(String),
    /// `groupResource` is not a valid glob.
    #[error(
        "groupResource {pattern:?} is not a valid glob ({problem}); write a resource such as `deployments.apps`, \
         or a glob such as `*.apps`"
    )]
    GroupResource {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A namespace is not a valid glob.
    #[error(
        "namespace {pattern:?} is not a valid glob ({problem}); write a namespace name, or a glob such as `team-*`"
    )]
    Namespace {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `resourceNameRegex` is not a regular expression.
    #[error("resourceNameRegex {regex:?} is not a valid regular expression: {problem}")]
    NameRegex {
        /// The expression.
        regex: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `labelSelector` cannot be used.
    #[error("labelSelector is invalid: {0}")]
    LabelSelector(String),
    /// A path (or `from`) is not a JSON pointer.
    #[error(
        "{place} {path:?} is not a JSON pointer: it {problem}; write it like /spec/storageClassName, with ~1 for a \
         / and ~0 for a ~ inside a key"
    )]
    Pointer {
        /// Which field: `patch 2 path`, `match 1 path`, `patch 3 from`.
        place: String,
        /// The path as written.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A JSON patch operation is not one of RFC 6902's.
    #[error("{place} has operation {operation:?}; use add, remove, replace, move, copy or test, in lowercase")]
    Operation {
        /// Which patch: `patch 2`.
        place: String,
        /// The operation as written.
        operation: String,
    },
    /// A `move` or `copy` has no `from`.
    #[error("{place} ({operation}) has no `from`; name the JSON pointer to {operation} from")]
    NoFrom {
        /// Which patch: `patch 2`.
        place: String,
        /// `move` or `copy`.
        operation: String,
    },
    /// A value cannot be read the way Velero reads it.
    #[error("{place} value {value} {problem}")]
    Value {
        /// Which patch or match: `patch 2`, `match 1`.
        place: String,
        /// The value as written.
        value: String,
        /// What is wrong with it, and how to write it.
        problem: String,
    },
    /// A merge or strategic patch's `patchData` is not a YAML or JSON mapping.
    #[error("{place} patchData does not parse ({problem}); write a YAML or JSON mapping")]
    PatchData {
        /// Which patch: `merge patch 1`, `strategic patch 2`.
        place: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A strategic patch uses a directive Cairn does not implement.
    #[error(
        "{place} uses {directive}, which Cairn does not support; Cairn knows `$patch: replace` and `$patch: \
         delete`: use them, or a merge patch, instead"
    )]
    Directive {
        /// Which patch: `strategic patch 1`.
        place: String,
        /// The directive: `$setElementOrder/containers`, `$retainKeys`, `$patch: merge`.
        directive: String,
    },
}
