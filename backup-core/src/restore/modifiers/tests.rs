//! Resource modifiers end to end: documents read, refused or applied to objects, and the plugin rules.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn pvc(namespace: &str, name: &str, class: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"namespace": namespace, "name": name, "labels": {"app": "db"}},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"]}
    })
}

fn deployment(namespace: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "web", "image": image},
            {"name": "log", "image": "docker.io/fluent-bit:3"}
        ]}}}
    })
}

fn modifiers(yaml: &str) -> Modifiers {
    parse(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn velero_documented_example_replaces_a_storage_class_and_removes_a_label() {
    let rules = modifiers(
        r#"
version: v1
resourceModifierRules:
- conditions:
     groupResource: persistentvolumeclaims
     resourceNameRegex: "^mysql.*$"
     namespaces:
     - bar
     - foo
     labelSelector:
        matchLabels:
           app: db
  patches:
  - operation: replace
    path: "/spec/storageClassName"
    value: "premium"
  - operation: remove
    path: "/metadata/labels/app"
"#,
    );
    let mut object = pvc("foo", "mysql-data", "standard");
    let applied = rules.apply("persistentvolumeclaims", &mut object).unwrap();
    assert_eq!(
        applied,
        ["rule 1 (persistentvolumeclaims): replace /spec/storageClassName, remove /metadata/labels/app"]
    );
    assert_eq!(object["spec"]["storageClassName"], json!("premium"));
    assert_eq!(object["metadata"]["labels"], json!({}));
    for (namespace, name) in [("other", "mysql-data"), ("foo", "postgres-data")] {
        let mut untouched = pvc(namespace, name, "standard");
        assert_eq!(rules.apply("persistentvolumeclaims", &mut untouched), Ok(vec![]));
        assert_eq!(untouched, pvc(namespace, name, "standard"));
    }
}

#[test]
fn json_patches_change_a_storage_class_an_image_and_replicas() {
    let rules = modifiers(
        "version: v1\nresourceModifierRules:\n\
         - conditions: {groupResource: persistentvolumeclaims}\n  \
           patches: [{operation: replace, path: /spec/storageClassName, value: gp3}]\n\
         - conditions: {groupResource: deployments.apps}\n  \
           patches:\n  - {operation: replace, path: /spec/template/spec/containers/0/image, value: 'nginx:1.27'}\n  \
           - {operation: replace, path: /spec/replicas, value: '3'}\n",
    );
    let mut claim = pvc("shop", "data", "gp2");
    rules.apply("persistentvolumeclaims", &mut claim).unwrap();
    assert_eq!(claim["spec"]["storageClassName"], json!("gp3"));
    let mut web = deployment("shop", "web", "nginx:1.25");
    let applied = rules.apply("deployments.apps", &mut web).unwrap();
    assert_eq!(
        applied,
        ["rule 2 (deployments.apps): replace /spec/template/spec/containers/0/image, replace /spec/replicas"]
    );
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], json!("nginx:1.27"));
    assert_eq!(web["spec"]["replicas"], json!(3));
}

#[test]
fn merge_patches_change_a_storage_class_an_image_and_replicas() {
    let rules = modifiers(
        r#"version: v1
resourceModifierRules:
- conditions: {groupResource: persistentvolumeclaims}
  mergePatches:
  - patchData: '{"spec": {"storageClassName": "gp3"}}'
- conditions: {groupResource: deployments.apps}
  mergePatches:
  - patchData: |
      spec:
        replicas: 3
  - patchData: |
      spec:
        template:
          spec:
            containers: [{name: web, image: "nginx:1.27"}]
"#,
    );
    let mut claim = pvc("shop", "data", "gp2");
    let applied = rules.apply("persistentvolumeclaims", &mut claim).unwrap();
    assert_eq!(applied, ["rule 1 (persistentvolumeclaims): merge patch /spec/storageClassName"]);
    assert_eq!(claim["spec"]["storageClassName"], json!("gp3"));
    let mut web = deployment("shop", "web", "nginx:1.25");
    rules.apply("deployments.apps", &mut web).unwrap();
    assert_eq!(web["spec"]["replicas"], json!(3));
    // A merge patch replaces lists whole: the log container is gone.
    assert_eq!(web["spec"]["template"]["spec"]["containers"], json!([{"name": "web", "image": "nginx:1.27"}]));
}

#[test]
fn strategic_patches_change_a_storage_class_an_image_by_container_name_and_replicas() {
    let rules = modifiers(
        r#"version: v1
resourceModifierRules:
- conditions: {groupResource: persistentvolumeclaims}
  strategicPatches:
  - patchData: '{"spec": {"storageClassName": "gp3"}}'
- conditions: {groupResource: deployments.apps}
  strategicPatches:
  - patchData: |
      spec:
        replicas: 3
        template:
          spec:
            containers: [{name: log, image: "registry.example.com/fluent-bit:3"}]
"#,
    );
    let mut claim = pvc("shop", "data", "gp2");
    rules.apply("persistentvolumeclaims", &mut claim).unwrap();
    assert_eq!(claim["spec"]["storageClassName"], json!("gp3"));
    let mut web = deployment("shop", "web", "nginx:1.25");
    let applied = rules.apply("deployments.apps", &mut web).unwrap();
    assert_eq!(
        applied,
        ["rule 2 (deployments.apps): strategic merge patch /spec/replicas, /spec/template/spec/containers"]
    );
    assert_eq!(web["spec"]["replicas"], json!(3));
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:1.25"}, {"name": "log", "image": "registry.example.com/fluent-bit:3"}])
    );
}

#[test]
fn strategic_patch_delete_removes_a_container_by_name() {
    let rules = modifiers(
        r#"version: v1
resourceModifierRules:
- conditions: {groupResource: deployments.apps}
  strategicPatches:
  - patchData: |
      spec:
        template:
          spec:
            containers: [{$patch: delete, name: log}]
"#,
    );
    let mut web = deployment("shop", "web", "nginx:1.25");
    rules.apply("deployments.apps", &mut web).unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"], json!([{"name": "web", "image": "nginx:1.25"}]));
}

#[test]
fn a_failing_test_operation_leaves_the_object_unchanged_and_is_no_error() {
    let rules = modifiers(
        "version: v1\nresourceModifierRules:\n- conditions: {groupResource: persistentvolumeclaims}\n  patches:\n  \
         - {operation: test, path: /spec/storageClassName, value: premium}\n  \
         - {operation: replace, path: /spec/storageClassName, value: standard}\n",
    );
    let mut other = pvc("shop", "data", "gp2");
    assert_eq!(rules.apply("persistentvolumeclaims", &mut other), Ok(vec![]));
    assert_eq!(other, pvc("shop", "data", "gp2"));
    let mut premium = pvc("shop", "data", "premium");
    assert_eq!(rules.apply("persistentvolumeclaims", &mut premium).unwrap().len(), 1);
    assert_eq!(premium["spec"]["storageClassName"], json!("standard"));
}

#[test]
fn conditions_see_the_object_as_it_came_in_not_as_earlier_rules_left_it() {
    let rules = modifiers(
        "version: v1\nresourceModifierRules:\n\
         - conditions: {groupResource: persistentvolumeclaims}\n  \
           patches: [{operation: replace, path: /spec/storageClassName, value: gp3}]\n\
         - conditions:\n    groupResource: persistentvolumeclaims\n    \
             matches: [{path: /spec/storageClassName, value: gp2}]\n  \
           patches: [{operation: add, path: /metadata/annotations, value: '{\"was\": \"gp2\"}'}]\n",
    );
    let mut claim = pvc("shop", "data", "gp2");
    assert_eq!(rules.apply("persistentvolumeclaims", &mut claim).unwrap().len(), 2);
    assert_eq!(claim["spec"]["storageClassName"], json!("gp3"));
    assert_eq!(claim["metadata"]["annotations"], json!({"was": "gp2"}));
}

#[test]
fn each_condition_decides_whether_a_rule_applies() {
    let rule = |conditions: &str| {
        modifiers(&format!(
            "version: v1\nresourceModifierRules:\n- conditions: {conditions}\n  \
             patches: [{{operation: add, path: /metadata/annotations, value: '{{}}'}}]\n"
        ))
    };
    let applies = |conditions: &str, group_resource: &str, object: &Value| {
        let mut object = object.clone();
        !rule(conditions).apply(group_resource, &mut object).unwrap().is_empty()
    };
    let claim = pvc("shop", "mysql-0", "gp2");
    let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"}, "spec": {}});
    let cases = [
        ("{groupResource: persistentvolumeclaims}", "persistentvolumeclaims", &claim, true),
        ("{groupResource: persistentvolumeclaims}", "pods", &claim, false),
        ("{groupResource: '*'}", "persistentvolumeclaims", &claim, true),
        ("{groupResource: '*'}", "deployments.apps", &claim, false),
        ("{groupResource: '*.apps'}", "deployments.apps", &claim, true),
        ("{groupResource: '*', namespaces: [shop]}", "persistentvolumeclaims", &claim, true),
        ("{groupResource: '*', namespaces: [other]}", "persistentvolumeclaims", &claim, false),
        ("{groupResource: '*', namespaces: [other]}", "persistentvolumes", &pv, true),
        ("{groupResource: '*', resourceNameRegex: '^mysql-\\d+$'}", "persistentvolumeclaims", &claim, true),
        ("{groupResource: '*', resourceNameRegex: '^pg'}", "persistentvolumeclaims", &claim, false),
        ("{groupResource: '*', labelSelector: {matchLabels: {app: db}}}", "persistentvolumeclaims", &claim, true),
        ("{groupResource: '*', labelSelector: {matchLabels: {app: web}}}", "persistentvolumeclaims", &claim, false),
        (
            "{groupResource: '*', labelSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}}",
            "persistentvolumeclaims",
            &claim,
            false,
        ),
        (
            "{groupResource: '*', matches: [{path: /spec/storageClassName, value: gp2}]}",
            "persistentvolumeclaims",
            &claim,
            true,
        ),
        (
            "{groupResource: '*', matches: [{path: /spec/storageClassName, value: gp3}]}",
            "persistentvolumeclaims",
            &claim,
            false,
        ),
        (
            "{groupResource: '*', matches: [{path: /spec/volumeName, value: pv-1}]}",
            "persistentvolumeclaims",
            &claim,
            false,
        ),
        (
            "{groupResource: '*', matches: [{path: /status/phase, value: Bound}]}",
            "persistentvolumeclaims",
            &claim,
            false,
        ),
    ];
    for (conditions, group_resource, object, expected) in cases {
        assert_eq!(applies(conditions, group_resource, object), expected, "{conditions} on {group_resource}");
    }
}

#[test]
fn a_failing_rule_is_reported_and_the_other_rules_still_apply() {
    let rules = modifiers(
        "version: v1\nresourceModifierRules:\n\
         - conditions: {groupResource: persistentvolumeclaims}\n  \
           patches: [{operation: replace, path: /spec/volumeName, value: pv-9}]\n\
         - conditions: {groupResource: persistentvolumeclaims}\n  \
           patches: [{operation: replace, path: /spec/storageClassName, value: gp3}]\n",
    );
    let mut claim = pvc("shop", "data", "gp2");
    let error = rules.apply("persistentvolumeclaims", &mut claim).unwrap_err();
    assert_eq!(error, "rule 1 (persistentvolumeclaims): replace /spec/volumeName: path is invalid");
    assert_eq!(claim["spec"]["storageClassName"], json!("gp3"));
    assert!(claim["spec"].get("volumeName").is_none());
}

#[test]
fn a_strategic_patch_on_a_custom_resource_is_an_error_for_that_object() {
    let rules = modifiers(
        "version: v1\nresourceModifierRules:\n- conditions: {groupResource: '**'}\n  \
         strategicPatches: [{patchData: '{\"spec\": {\"size\": 2}}'}]\n",
    );
    let mut widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}});
    let error = rules.apply("widgets.example.com", &mut widget).unwrap_err();
    assert!(error.starts_with("rule 1 (**): strategic patches need the schema"), "{error}");
    assert_eq!(widget["spec"], json!({}));
}

#[test]
fn json_documents_are_read_like_yaml() {
    let rules = modifiers(
        r#"{"version": "v1", "resourceModifierRules": [{"conditions": {"groupResource": "persistentvolumeclaims"},
            "patches": [{"operation": "replace", "path": "/spec/storageClassName", "value": "gp3"}]}]}"#,
    );
    let mut claim = pvc("shop", "data", "gp2");
    rules.apply("persistentvolumeclaims", &mut claim).unwrap();
    assert_eq!(claim["spec"]["storageClassName"], json!("gp3"));
}

#[test]
fn documents_that_cannot_be_used_are_refused_naming_the_problem() {
    assert!(refusal("version: v2\nresourceModifierRules: []").starts_with("resource modifiers version \"v2\""));
    assert!(refusal("resourceModifierRules: []").starts_with("resource modifiers version \"\""));
    assert!(refusal("version: v1\nresourceModifierRules: []").starts_with("the resource modifiers have no rules"));
    let unknown = refusal(
        "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  \
         patches: [{op: remove, path: /a}]\n",
    );
    assert!(unknown.contains("unknown field `op`, expected one of `operation`"), "{unknown}");
    assert!(refusal("version: v1\nrules: []").contains("unknown field `rules`"));
}

#[test]
fn each_kind_of_bad_rule_is_refused_naming_the_rule_and_what_it_touches() {
    const PODS: &str = "{groupResource: pods}";
    const REMOVE: &str = "patches: [{operation: remove, path: /a}]";
    let second = |conditions: &str, patches: &str| {
        refusal(&format!(
            "version: v1\nresourceModifierRules:\n- conditions: {PODS}\n  {REMOVE}\n\
             - conditions: {conditions}\n  {patches}\n"
        ))
    };
    let cases = [
        ("{resourceNameRegex: web}", REMOVE, "rule 2 (no groupResource): conditions.groupResource is missing"),
        (PODS, "", "rule 2 (pods): it has no patches, mergePatches or strategicPatches"),
        (
            PODS,
            "patches: [{operation: remove, path: /a}]\n  mergePatches: [{patchData: 'a: 1'}]",
            "rule 2 (pods): it has both patches and mergePatches; Velero takes one kind of patch per rule",
        ),
        (
            "{groupResource: pods, resourceNameRegex: '(web'}",
            REMOVE,
            "rule 2 (pods): resourceNameRegex \"(web\" is not a valid regular expression",
        ),
        (
            "{groupResource: pods, labelSelector: {matchExpressions: [{key: app, operator: In}]}}",
            REMOVE,
            "rule 2 (pods): labelSelector is invalid: app In needs values",
        ),
        (
            PODS,
            "patches: [{operation: remove, path: /a}, {operation: remove, path: spec/a}]",
            "rule 2 (pods): patch 2 path \"spec/a\" is not a JSON pointer: it does not start with /",
        ),
        (
            "{groupResource: pods, matches: [{path: '/a~', value: x}]}",
            REMOVE,
            "rule 2 (pods): match 1 path \"/a~\" is not a JSON pointer",
        ),
        (
            PODS,
            "patches: [{operation: delete, path: /a}]",
            "rule 2 (pods): patch 1 has operation \"delete\"; use add, remove, replace, move, copy or test",
        ),
        (PODS, "patches: [{operation: move, path: /a}]", "rule 2 (pods): patch 1 (move) has no `from`"),
        (
            PODS,
            "patches: [{operation: add, path: /a, value: '{x'}]",
            "rule 2 (pods): patch 1 value \"{x\" starts with { or [, so it is read as JSON",
        ),
        (
            PODS,
            "mergePatches: [{patchData: 'spec: {replicas: 2'}]",
            "rule 2 (pods): merge patch 1 patchData does not parse (",
        ),
        (
            PODS,
            "strategicPatches: [{patchData: '[1]'}]",
            "rule 2 (pods): strategic patch 1 patchData does not parse (it is a list, not a mapping)",
        ),
        (
            PODS,
            "strategicPatches: [{patchData: '{\"spec\": {\"$retainKeys\": [a]}}'}]",
            "rule 2 (pods): strategic patch 1 uses `$retainKeys`, which Cairn does not support",
        ),
        (
            "{groupResource: '{pods'}",
            REMOVE,
            "rule 2 ({pods): groupResource \"{pods\" is not a valid glob (a { is not closed)",
        ),
    ];
    for (conditions, patches, expected) in cases {
        let error = second(conditions, patches);
        assert!(error.starts_with(&format!("resource modifier {expected}")), "{conditions} {patches}\n{error}");
    }
}

#[test]
fn the_modifiers_config_map_must_hold_exactly_one_document() {
    let document = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  \
                    patches: [{operation: remove, path: /a}]\n";
    assert!(parse_config_map(&data(&[("rules.yaml", document)])).is_ok());
    assert_eq!(parse_config_map(&data(&[])).unwrap_err(), ModifierError::ConfigMapEntries(0));
    let two = data(&[("a.yaml", document), ("b.yaml", document)]);
    assert_eq!(parse_config_map(&two).unwrap_err(), ModifierError::ConfigMapEntries(2));
}

#[test]
fn storage_class_mapping_changes_claims_volumes_and_stateful_set_templates() {
    let rules = storage_class_changes(&data(&[("gp2", "gp3"), ("standard", "premium")])).unwrap();
    let mut claim = pvc("shop", "data", "gp2");
    let applied = rules.apply("persistentvolumeclaims", &mut claim).unwrap();
    assert_eq!(applied, ["velero.io/change-storage-class: /spec/storageClassName gp2 -> gp3"]);
    assert_eq!(claim["spec"]["storageClassName"], json!("gp3"));
    let mut volume = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
                            "spec": {"storageClassName": "standard"}});
    rules.apply("persistentvolumes", &mut volume).unwrap();
    assert_eq!(volume["spec"]["storageClassName"], json!("premium"));
    let mut set = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"namespace": "shop", "name": "db"},
        "spec": {"volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"storageClassName": "gp2"}},
            {"metadata": {"name": "logs"}, "spec": {}}
        ]}
    });
    rules.apply("statefulsets.apps", &mut set).unwrap();
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], json!("gp3"));
    assert_eq!(set["spec"]["volumeClaimTemplates"][1]["spec"], json!({}));
    let mut unmapped = pvc("shop", "data", "local");
    assert_eq!(rules.apply("persistentvolumeclaims", &mut unmapped), Ok(vec![]));
    let mut config = json!({"apiVersion": "v1", "kind": "ConfigMap", "spec": {"storageClassName": "gp2"}});
    assert_eq!(rules.apply("configmaps", &mut config), Ok(vec![]));
}

#[test]
fn storage_class_mapping_refuses_an_invalid_new_class_and_empty_data_does_nothing() {
    let error = storage_class_changes(&data(&[("gp2", "GP 3")])).unwrap_err().to_string();
    assert!(
        error.starts_with("the storage class mapping \"gp2\": \"GP 3\" (velero.io/change-storage-class)"),
        "{error}"
    );
    assert!(storage_class_changes(&data(&[])).unwrap().is_empty());
}

#[test]
fn image_name_mapping_replaces_parts_of_images_in_every_pod_template() {
    let rules = image_name_changes(&data(&[
        ("case1", "docker.io/,registry.example.com/"),
        ("case2", " nginx:1.25 , nginx:1.27 "),
    ]))
    .unwrap();
    let mut web = deployment("shop", "web", "nginx:1.25");
    let applied = rules.apply("deployments.apps", &mut web).unwrap();
    assert_eq!(
        applied,
        ["velero.io/change-image-name: container web nginx:1.25 -> nginx:1.27, \
          container log docker.io/fluent-bit:3 -> registry.example.com/fluent-bit:3"]
    );
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "init", "image": "docker.io/busybox"}],
        "containers": [{"name": "c", "image": "nginx:1.25"}]
    }});
    rules.apply("pods", &mut pod).unwrap();
    assert_eq!(pod["spec"]["initContainers"][0]["image"], json!("registry.example.com/busybox"));
    assert_eq!(pod["spec"]["containers"][0]["image"], json!("nginx:1.27"));
    let mut cron = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "job", "image": "docker.io/backup:1"}]
        }}}}}
    });
    rules.apply("cronjobs.batch", &mut cron).unwrap();
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("registry.example.com/backup:1")
    );
    let pod_template = json!({"spec": {"containers": [{"image": "nginx:1.25"}]}});
    let mut service = json!({"apiVersion": "v1", "kind": "Service", "spec": {"template": pod_template}});
    assert_eq!(rules.apply("services", &mut service), Ok(vec![]));
}

#[test]
fn image_name_mapping_takes_the_first_matching_entry_by_key_and_replaces_every_occurrence() {
    let rules = image_name_changes(&data(&[("b", "dev,prod"), ("a", "dev/,test/")])).unwrap();
    let mut web = deployment("shop", "web", "dev/app:dev");
    rules.apply("deployments.apps", &mut web).unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], json!("test/app:dev"));
    let rules = image_name_changes(&data(&[("port", "5000,3000")])).unwrap();
    let mut web = deployment("shop", "web", "10.0.0.1:5000/app:5000");
    rules.apply("deployments.apps", &mut web).unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], json!("10.0.0.1:3000/app:3000"));
}

#[test]
fn image_name_mapping_refuses_entries_that_are_not_old_comma_new() {
    for value in ["nginx", ",nginx", "nginx,", "nginx, "] {
        let error = image_name_changes(&data(&[("case1", value)])).unwrap_err();
        assert_eq!(error, ModifierError::ImageName { key: "case1".to_owned(), value: value.to_owned() }, "{value}");
    }
    assert!(image_name_changes(&data(&[])).unwrap().is_empty());
}
