//! Resource modifiers on a restore, against the real control plane: Velero's rules format in a ConfigMap
//! (`--resource-modifier-configmap`) changes a replica count (JSON patch), a storage class (merge patch) and an
//! image (strategic merge patch) only where the conditions match; Velero's image name and storage class plugin
//! ConfigMaps apply the same way; a dry run names what the rules change; a rule that does not parse refuses
//! the restore before anything is restored.

use std::process::Output;

use cairn_tests::{TestEnv, apply::apply_manifests};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::PersistentVolumeClaim};
use kube::Api;
use serde_json::{Value, json};

fn cairn(env: &TestEnv, storage: &str, namespace: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    command.args(args).args(["--storage", storage, "-n", namespace]).env("KUBECONFIG", &env.info().kubeconfig);
    command.output().expect("cairn runs")
}

fn yaml(objects: &[Value]) -> String {
    objects.iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect()
}

fn deployment(namespace: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace, "labels": {"tier": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

fn claim(namespace: &str, name: &str, class: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

const RULES: &str = r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    resourceNameRegex: "^web$"
  patches:
  - operation: replace
    path: /spec/replicas
    value: "3"
- conditions:
    groupResource: deployments.apps
    labelSelector:
      matchLabels:
        tier: nothing
  patches:
  - operation: replace
    path: /spec/replicas
    value: "9"
- conditions:
    groupResource: persistentvolumeclaims
    resourceNameRegex: "^data$"
  mergePatches:
  - patchData: '{"spec": {"storageClassName": "fast"}}'
- conditions:
    groupResource: deployments.apps
    resourceNameRegex: "^api$"
  strategicPatches:
  - patchData: '{"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "cairn.test/api:2"}]}}}}'
"#;

#[tokio::test]
async fn modifiers_change_only_what_their_conditions_match_and_bad_rules_refuse_the_restore() {
    let env = TestEnv::get();
    let client = env.client().await;
    let source = env.namespace("mods").await;
    let target = env.namespace("mods-target").await;
    let cairn_namespace = env.namespace("mods-cairn").await;
    let storage = format!("file://{}", env.info().state_dir.join(format!("mods-{source}")).display());
    apply_manifests(
        &client,
        &yaml(&[
            deployment(&source, "web", "cairn.test/web:1"),
            deployment(&source, "api", "cairn.test/api:1"),
            claim(&source, "data", "slow"),
            claim(&source, "logs", "archive"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rules", "namespace": cairn_namespace}, "data": {"rules.yaml": RULES}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "images", "namespace": cairn_namespace,
                "labels": {"velero.io/plugin-config": "", "velero.io/change-image-name": "RestoreItemAction"}},
                "data": {"case1": "cairn.test/web:1,cairn.test/web:2"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "classes", "namespace": cairn_namespace,
                "labels": {"cairn.dev/change-storage-class": "RestoreItemAction"}},
                "data": {"archive": "cold"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "broken", "namespace": cairn_namespace},
                "data": {"rules.yaml": "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n  - {operation: frobnicate, path: /spec}\n"}}),
        ]),
    )
    .await
    .unwrap();
    let backed_up =
        cairn(&env, &storage, &cairn_namespace, &["backup", "create", "mods", "--include-namespaces", &source]);
    assert!(backed_up.status.success(), "{}", String::from_utf8_lossy(&backed_up.stderr));

    let mapping = format!("{source}:{target}");
    let restore = |name: &str, extra: &[&str]| {
        let mut args = vec!["restore", "create", name, "--from-backup", "mods", "--namespace-mappings", &mapping];
        args.extend(extra);
        cairn(&env, &storage, &cairn_namespace, &args)
    };
    // A rule that does not parse: refused before anything is restored, naming the rule.
    let refused = restore("broken", &["--resource-modifier-configmap", "broken"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("resource modifier rule 1 (pods)"), "{stderr}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &target);
    assert!(deployments.get_opt("web").await.unwrap().is_none(), "a refused restore restored something");

    let preview = restore("preview", &["--resource-modifier-configmap", "rules", "--dry-run"]);
    let shown = String::from_utf8_lossy(&preview.stdout);
    assert!(shown.contains("rule 1 (deployments.apps): replace /spec/replicas"), "{shown}");
    assert!(shown.contains("velero.io/change-image-name"), "{shown}");
    assert!(deployments.get_opt("web").await.unwrap().is_none(), "a dry run restored something");

    let restored = restore("real", &["--resource-modifier-configmap", "rules"]);
    assert!(
        restored.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    let image_and_replicas = |d: Deployment| {
        let spec = d.spec;
        (spec.replicas, spec.template.spec.unwrap().containers[0].image.clone().unwrap())
    };
    assert_eq!(image_and_replicas(deployments.get("web").await.unwrap()), (Some(3), "cairn.test/web:2".to_owned()));
    assert_eq!(image_and_replicas(deployments.get("api").await.unwrap()), (Some(1), "cairn.test/api:2".to_owned()));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &target);
    let class = |c: PersistentVolumeClaim| c.spec.unwrap().storage_class_name.unwrap();
    assert_eq!(class(claims.get("data").await.unwrap()), "fast");
    assert_eq!(class(claims.get("logs").await.unwrap()), "cold");
}
