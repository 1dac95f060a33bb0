//! Restores against the real control plane, controller manager and S3 server: round trips after the
//! namespace is gone, namespace remapping, both existing-object policies, dry runs that change nothing,
//! Velero's archives, and archives that must be refused.

use cairn_api::Compression;
use cairn_api::SelectionSpec;
use std::{collections::BTreeMap, time::Duration};

use backup_core::{
    archive::item_path,
    backup::{BackupProgress, BackupRecord, BackupRequest, BackupSpec, run_backup},
    restore::{
        ExistingResourcePolicy, ItemOutcome, RestoreError, RestoreOutcome, RestorePhase, RestoreProgress,
        RestoreRequest, RestoreSpec, run_restore, strip,
    },
    store::Store,
};
use cairn_kube::discovery::Discovery;
use cairn_tests::{
    TestEnv,
    apply::{SAMPLE_WORKLOADS, apply_manifests},
    archive_read::archive_entries,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, PostParams},
};
use serde_json::{Value, json};
use tokio::sync::watch;

/// A Completed zstd backup `name` of what `selection` takes, kept an hour.
pub(crate) async fn backup_selected(
    client: &Client,
    store: &Store,
    name: &str,
    selection: SelectionSpec,
) -> BackupRecord {
    let request = BackupRequest {
        name: name.to_owned(),
        spec: BackupSpec {
            selection,
            ttl: "1h".into(),
            storage_location: String::new(),
            compression: Some(Compression::Zstd),
            hooks: Default::default(),
            format: None,
        },
        labels: BTreeMap::new(),
    };
    let (progress, _) = watch::channel(BackupProgress::default());
    run_backup(client, store, request, &progress).await.expect("the backup completes").record
}

async fn backup_namespace(client: &Client, store: &Store, name: &str, namespace: &str) -> BackupRecord {
    let selection = SelectionSpec { included_namespaces: vec![namespace.to_owned()], ..Default::default() };
    backup_selected(client, store, name, selection).await
}

fn restore_request(name: &str, backup: &str) -> RestoreRequest {
    RestoreRequest::new(name, RestoreSpec { backup_name: backup.to_owned(), ..Default::default() }, false)
}

async fn restore(client: &Client, store: &Store, request: RestoreRequest) -> Result<RestoreOutcome, RestoreError> {
    let (progress, _) = watch::channel(RestoreProgress::default());
    run_restore(client, store, request, &progress).await
}

async fn wait_gone(client: &Client, namespace: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(namespace, &DeleteParams::default()).await.unwrap();
    for _ in 0..600 {
        if namespaces.get_opt(namespace).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("namespace {namespace} was not deleted within 60 s");
}

/// The live object at the archived object's version, or None.
async fn live_object(client: &Client, discovery: &Discovery, archived: &Value, group_resource: &str) -> Option<Value> {
    let base = discovery.by_group_resource(group_resource)?;
    let version = archived["apiVersion"].as_str()?.rsplit('/').next()?.to_owned();
    let resource_type = cairn_kube::discovery::ResourceType { version, ..base.clone() };
    let namespace = archived.pointer("/metadata/namespace").and_then(Value::as_str);
    let name = archived.pointer("/metadata/name").and_then(Value::as_str)?;
    let text = cairn_kube::client::get_text(client, &resource_type.object_path(namespace, name)).await.ok()?;
    serde_json::from_str(&text).ok()
}

/// Types whose objects controllers rewrite after creation (so a field-by-field comparison would measure the
/// controllers, not the restore).
const CONTROLLER_OWNED: &[&str] = &["endpoints", "endpointslices.discovery.k8s.io", "events", "events.events.k8s.io"];

#[tokio::test]
async fn restore_after_the_namespace_is_gone_brings_every_object_back_field_by_field() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("restore-round-trip").await;
    apply_manifests(&client, &SAMPLE_WORKLOADS.replace("NAMESPACE", &namespace)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the controllers create ReplicaSets and Pods
    let store = env.s3_store(&env.bucket_prefix("restore-round-trip"));
    let record = backup_namespace(&client, &store, "before-loss", &namespace).await;
    let archived = archive_entries(&store, &record).await;
    wait_gone(&client, &namespace).await;

    let outcome = restore(&client, &store, restore_request("after-loss", "before-loss")).await.unwrap();
    let failed: Vec<_> = outcome.items.iter().filter(|i| i.outcome == ItemOutcome::Failed).collect();
    assert!(failed.is_empty(), "failed: {failed:#?}");
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed);

    let discovery = Discovery::run(&client).await.unwrap();
    let mut compared = 0;
    for (path, bytes) in &archived {
        let Some(entry) = backup_core::archive::ItemPath::parse(path) else { continue };
        if entry.namespace.as_deref() != Some(namespace.as_str())
            || CONTROLLER_OWNED.contains(&entry.group_resource.as_str())
        {
            continue;
        }
        let mut want: Value = serde_json::from_slice(bytes).unwrap();
        if backup_core::restore::wave_of(&entry.group_resource).is_none() {
            continue;
        }
        let mut have = live_object(&client, &discovery, &want, &entry.group_resource)
            .await
            .unwrap_or_else(|| panic!("{path} was not restored"));
        let result = outcome
            .items
            .iter()
            .find(|i| i.resource == entry.group_resource && i.name == entry.name)
            .unwrap_or_else(|| panic!("{path} has no result"));
        match result.outcome {
            ItemOutcome::Created => {
                assert_eq!(have["metadata"]["labels"]["cairn.dev/restore-name"], "after-loss", "{path}")
            }
            // Made again by a controller before the restore reached it (kube-root-ca.crt, the default
            // service account), equal to the backed-up one.
            ItemOutcome::Unchanged => {}
            other => panic!("{path}: {other:?} ({:?})", result.reason),
        }
        strip(&entry.group_resource, &mut want, false);
        strip(&entry.group_resource, &mut have, false);
        // Controllers annotate and count what they manage; the restore itself must change nothing else.
        for field in ["spec", "data", "stringData", "binaryData", "rules", "subjects", "roleRef", "type"] {
            assert_eq!(have.get(field), want.get(field), "{path}: {field} differs");
        }
        assert_eq!(have["metadata"]["labels"], want["metadata"]["labels"], "{path}: labels differ");
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} objects compared");
    let widget: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("demo.cairn.dev", "v1", "Widget"),
            "widgets",
        ),
    );
    assert_eq!(widget.get("gear").await.unwrap().data["spec"]["color"], "blue");

    // The results are stored beside the backup.
    let keys = backup_core::store::Layout.restore_keys("after-loss");
    let list: BTreeMap<String, Vec<String>> = store.get_gzip_json(&keys.resource_list).await.unwrap();
    assert!(list["v1/ConfigMap"].contains(&format!("{namespace}/shop-config(created)")), "{list:?}");
    // The backup wrote its objects wave by wave, then the related objects it found on the way (the CRD, the
    // PersistentVolume, the ClusterRoleBinding and its ClusterRole): the restore reads the archive once for
    // each run of waves that follow one another, five times instead of once per wave.
    let log = backup_core::restore::read_restore_log(&store, "after-loss").await.unwrap();
    assert!(log.contains("the archive is read 5 times"), "{log}");
}

#[tokio::test]
async fn restore_into_a_mapped_namespace_moves_objects_and_their_references() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("restore-map").await;
    apply_manifests(&client, &SAMPLE_WORKLOADS.replace("NAMESPACE", &namespace)).await.unwrap();
    let store = env.s3_store(&env.bucket_prefix("restore-map"));
    backup_namespace(&client, &store, "source", &namespace).await;
    let target = env.unique_name("restore-mapped");
    let mut request = restore_request("mapped", "source");
    request.spec.namespace_mapping = BTreeMap::from([(namespace.clone(), target.clone())]);
    let outcome = restore(&client, &store, request).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed, "{:#?}", outcome.errors);

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let created = namespaces.get(&target).await.unwrap();
    assert_eq!(created.metadata.labels.unwrap()["team"], "shop", "the namespace keeps the backed-up labels");
    let configmap = Api::<ConfigMap>::namespaced(client.clone(), &target).get("shop-config").await.unwrap();
    assert_eq!(configmap.data.unwrap()["LOG_LEVEL"], "info");
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(client.clone(), &target);
    let binding = bindings.get("shop-runner-reads-config").await.unwrap();
    assert_eq!(binding.subjects.unwrap()[0].namespace.as_deref(), Some(target.as_str()));
    // The source namespace is untouched.
    let original = Api::<ConfigMap>::namespaced(client, &namespace).get("shop-config").await.unwrap();
    assert!(!original.metadata.labels.unwrap().contains_key("cairn.dev/restore-name"));
}

#[tokio::test]
async fn existing_objects_are_left_alone_or_patched_by_policy_and_dry_runs_change_nothing() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("restore-policy").await;
    apply_manifests(&client, &SAMPLE_WORKLOADS.replace("NAMESPACE", &namespace)).await.unwrap();
    let store = env.s3_store(&env.bucket_prefix("restore-policy"));
    backup_namespace(&client, &store, "baseline", &namespace).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let mut changed = configmaps.get("shop-config").await.unwrap();
    changed.data.as_mut().unwrap().insert("LOG_LEVEL".into(), "debug".into());
    configmaps.replace("shop-config", &PostParams::default(), &changed).await.unwrap();
    configmaps.delete("nginx-conf", &DeleteParams::default()).await.unwrap();

    let versions = |list: Vec<ConfigMap>| -> BTreeMap<String, String> {
        list.into_iter().map(|c| (c.metadata.name.unwrap(), c.metadata.resource_version.unwrap())).collect()
    };
    let before = versions(configmaps.list(&Default::default()).await.unwrap().items);

    // A dry run with the update policy reports what it would do and changes nothing.
    let mut preview = restore_request("preview", "baseline");
    preview.dry_run = true;
    preview.spec.existing_resource_policy = ExistingResourcePolicy::Update;
    let planned = restore(&client, &store, preview).await.unwrap();
    assert_eq!(planned.restore.status.phase, RestorePhase::DryRun);
    let find = |outcome: &RestoreOutcome, name: &str| {
        outcome.items.iter().find(|i| i.name == name && i.resource == "configmaps").unwrap()
    };
    let shop = find(&planned, "shop-config");
    assert_eq!((shop.outcome, shop.changes.clone()), (ItemOutcome::Updated, vec!["data.LOG_LEVEL".to_owned()]));
    assert_eq!(find(&planned, "nginx-conf").outcome, ItemOutcome::Created);
    assert_eq!(
        versions(configmaps.list(&Default::default()).await.unwrap().items),
        before,
        "the dry run changed the cluster"
    );
    assert!(
        store.get_bytes(&backup_core::store::Layout.restore_keys("preview").record).await.is_err(),
        "a dry run stores nothing"
    );

    // Policy none: the changed object is left alone with a warning; the deleted one comes back.
    let kept = restore(&client, &store, restore_request("keep", "baseline")).await.unwrap();
    let shop = find(&kept, "shop-config");
    assert_eq!(shop.outcome, ItemOutcome::Skipped);
    assert_eq!(shop.changes, ["data.LOG_LEVEL"]);
    assert!(kept.warnings.iter().any(|w| w.name.as_deref() == Some("shop-config")));
    assert_eq!(find(&kept, "nginx-conf").outcome, ItemOutcome::Created);
    assert_eq!(configmaps.get("shop-config").await.unwrap().data.unwrap()["LOG_LEVEL"], "debug");
    assert!(kept.items.iter().any(|i| i.outcome == ItemOutcome::Unchanged), "unchanged objects are reported");

    // Policy update: the difference is patched back.
    let mut update = restore_request("update", "baseline");
    update.spec.existing_resource_policy = ExistingResourcePolicy::Update;
    let updated = restore(&client, &store, update).await.unwrap();
    assert_eq!(find(&updated, "shop-config").outcome, ItemOutcome::Updated);
    let patched = configmaps.get("shop-config").await.unwrap();
    assert_eq!(patched.data.unwrap()["LOG_LEVEL"], "info");
    assert_eq!(patched.metadata.labels.unwrap()["cairn.dev/restore-name"], "update");
}

async fn velero_backup(store: &Store, name: &str, entries: &[(&str, Value)]) {
    cairn_tests::forge::velero_backup(store, name, "1.1.0\n", entries).await
}

#[tokio::test]
async fn velero_archives_restore_and_escaping_paths_are_refused() {
    let env = TestEnv::get();
    let client = env.client().await;
    let store = env.s3_store(&env.bucket_prefix("restore-velero"));
    let namespace = env.unique_name("from-velero");
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace, "uid": "old", "resourceVersion": "1"}, "data": {"mode": "velero"}});
    let ns_object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {"origin": "velero"}}, "status": {"phase": "Active"}});
    let cm_path = item_path("configmaps", Some(&namespace), "settings");
    velero_backup(
        &store,
        "velero-nightly",
        &[(&item_path("namespaces", None, &namespace), ns_object), (&cm_path, configmap.clone())],
    )
    .await;

    let outcome = restore(&client, &store, restore_request("from-velero", "velero-nightly")).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed, "{:#?}", outcome.items);
    let log = backup_core::restore::read_restore_log(&store, "from-velero").await.unwrap();
    assert!(log.contains("in restore order: it is read once"), "{log}");
    let restored = Api::<ConfigMap>::namespaced(client.clone(), &namespace).get("settings").await.unwrap();
    assert_eq!(restored.data.unwrap()["mode"], "velero");
    assert_eq!(
        Api::<Namespace>::all(client.clone()).get(&namespace).await.unwrap().metadata.labels.unwrap()["origin"],
        "velero"
    );

    // Velero's rule for namespaces the restore leaves out: a restore of only the ConfigMaps into another
    // namespace creates it from the archived namespace (its labels kept); a backup without the namespace
    // object (it was labelled out of the backup) gets a bare one.
    let mapped = env.unique_name("velero-mapped");
    let mut request = restore_request("configmaps-only", "velero-nightly");
    request.spec.selection.included_resources = vec!["configmaps".into()];
    request.spec.namespace_mapping = BTreeMap::from([(namespace.clone(), mapped.clone())]);
    let outcome = restore(&client, &store, request).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed, "{:#?}", outcome.items);
    let created = Api::<Namespace>::all(client.clone()).get(&mapped).await.unwrap();
    assert_eq!(created.metadata.labels.unwrap_or_default().get("origin").map(String::as_str), Some("velero"));
    assert!(Api::<ConfigMap>::namespaced(client.clone(), &mapped).get_opt("settings").await.unwrap().is_some());
    let unlabelled = env.unique_name("no-ns-object");
    let orphan = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphan", "namespace": unlabelled}, "data": {}});
    velero_backup(&store, "without-namespace", &[(&item_path("configmaps", Some(&unlabelled), "orphan"), orphan)])
        .await;
    let outcome = restore(&client, &store, restore_request("bare-namespace", "without-namespace")).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed, "{:#?}", outcome.items);
    let bare = Api::<Namespace>::all(client.clone()).get(&unlabelled).await.unwrap();
    let labels = bare.metadata.labels.unwrap_or_default();
    assert!(labels.keys().all(|k| k == "kubernetes.io/metadata.name"), "{labels:?}");

    // An archive with a path that climbs out is refused whole: not even its harmless objects are applied.
    let other = env.unique_name("never-created");
    let harmless = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}});
    velero_backup(
        &store,
        "hostile",
        &[(&item_path("namespaces", None, &other), harmless), ("resources/../../etc/evil.json", json!({}))],
    )
    .await;
    let error = restore(&client, &store, restore_request("hostile-restore", "hostile")).await.unwrap_err();
    assert!(matches!(error, RestoreError::UnsafePath { .. }), "{error}");
    assert!(Api::<Namespace>::all(client.clone()).get_opt(&other).await.unwrap().is_none());

    // An unknown archive format version is refused before anything is applied.
    let harmless = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}});
    cairn_tests::forge::velero_backup(
        &store,
        "future",
        "2.0.0\n",
        &[(&item_path("namespaces", None, &other), harmless)],
    )
    .await;
    let error = restore(&client, &store, restore_request("future-restore", "future")).await.unwrap_err();
    assert!(matches!(error, RestoreError::FormatVersion { .. }), "{error}");
    assert!(Api::<Namespace>::all(client.clone()).get_opt(&other).await.unwrap().is_none());

    // An object at a version the cluster does not serve fails with the versions it does serve.
    let old = json!({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "legacy", "namespace": namespace}, "spec": {}});
    velero_backup(&store, "old-api", &[(&item_path("deployments.apps", Some(&namespace), "legacy"), old)]).await;
    let outcome = restore(&client, &store, restore_request("old-api-restore", "old-api")).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::PartiallyFailed);
    let reason = outcome.items.iter().next().unwrap().reason.unwrap_or_default();
    assert!(reason.contains("does not serve apps/v1beta1") && reason.contains("apps/v1"), "{reason}");
}

#[tokio::test]
async fn damaged_or_missing_backups_are_refused_before_anything_is_applied() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("restore-damaged").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let object = ConfigMap {
        metadata: kube::api::ObjectMeta { name: Some("c".into()), ..Default::default() },
        ..Default::default()
    };
    configmaps.create(&PostParams::default(), &object).await.unwrap();
    let store = env.s3_store(&env.bucket_prefix("restore-damaged"));
    let record = backup_namespace(&client, &store, "damaged", &namespace).await;
    let keys = backup_core::backup::backup_keys(&record);
    let archive = store.get_bytes(&keys.archive).await.unwrap();
    store.overwrite(&keys.archive, archive.slice(..archive.len() / 2)).await.unwrap();
    wait_gone(&client, &namespace).await;

    let error = restore(&client, &store, restore_request("from-damaged", "damaged")).await.unwrap_err();
    assert!(matches!(error, RestoreError::Corrupt { .. }), "{error}");
    assert!(
        Api::<Namespace>::all(client.clone()).get_opt(&namespace).await.unwrap().is_none(),
        "something was applied"
    );

    let missing = restore(&client, &store, restore_request("from-nothing", "no-such-backup")).await.unwrap_err();
    assert!(missing.to_string().contains("no backup named \"no-such-backup\""), "{missing}");
    let mut bad_mapping = restore_request("bad-map", "damaged");
    bad_mapping.spec.namespace_mapping = BTreeMap::from([("a".into(), "Not_Valid".into())]);
    assert!(matches!(restore(&client, &store, bad_mapping).await, Err(RestoreError::Mapping(_))));
}

#[tokio::test]
async fn webhook_configurations_are_restored_after_the_objects_they_would_block() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("restore-webhook").await;
    // A webhook that refuses every ConfigMap created in this namespace (its Service has no endpoints), applied
    // after the ConfigMap it would have blocked.
    let manifest = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}, labels: {{cairn-test-webhook: {namespace}}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: guarded, namespace: {namespace}}}
data: {{k: v}}
---
apiVersion: v1
kind: Service
metadata: {{name: hook, namespace: {namespace}}}
spec: {{ports: [{{port: 443}}]}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {namespace}-guard}}
webhooks:
  - name: guard.cairn.dev
    clientConfig: {{service: {{namespace: {namespace}, name: hook, path: /validate, port: 443}}}}
    rules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}]
    namespaceSelector: {{matchLabels: {{cairn-test-webhook: {namespace}}}}}
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
"#
    );
    apply_manifests(&client, &manifest).await.unwrap();
    let store = env.s3_store(&env.bucket_prefix("restore-webhook"));
    let selection = SelectionSpec {
        included_namespaces: vec![namespace.clone()],
        included_resources: vec![
            "configmaps".into(),
            "services".into(),
            "namespaces".into(),
            "validatingwebhookconfigurations".into(),
        ],
        include_cluster_resources: Some(true),
        ..Default::default()
    };
    backup_selected(&client, &store, "guarded", selection).await;
    let webhooks = kube::discovery::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration"),
        "validatingwebhookconfigurations",
    );
    let webhooks: Api<DynamicObject> = Api::all_with(client.clone(), &webhooks);
    let webhook_name = format!("{namespace}-guard");
    webhooks.delete(&webhook_name, &DeleteParams::default()).await.unwrap();
    wait_gone(&client, &namespace).await;

    let outcome = restore(&client, &store, restore_request("guarded-back", "guarded")).await.unwrap();
    let guarded = outcome.items.iter().find(|i| i.name == "guarded").unwrap();
    assert_eq!(guarded.outcome, ItemOutcome::Created, "{guarded:?}");
    assert!(webhooks.get_opt(&webhook_name).await.unwrap().is_some(), "the webhook configuration came back");
    // The webhook is live again: had it come first, the ConfigMap would have been refused like this one.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let late = ConfigMap {
        metadata: kube::api::ObjectMeta { name: Some("late".into()), ..Default::default() },
        ..Default::default()
    };
    let refused = configmaps.create(&PostParams::default(), &late).await.unwrap_err();
    assert!(refused.to_string().contains("guard.cairn.dev"), "{refused}");
    // Refused for want of endpoints: the API server dials endpoints only, never the unrouted service range.
    assert!(refused.to_string().contains("endpoints"), "{refused}");
    webhooks.delete(&webhook_name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn explicit_node_ports_and_field_owners_come_back_and_allocated_node_ports_are_allocated_again() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Patch, PatchParams};
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("node-ports").await;
    // A node port in the default range that no other test picks.
    let explicit = 30000 + (std::process::id() % 2700) as i32;
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": explicit},
            {"name": "metrics", "port": 9090, "protocol": "TCP"}]}});
    services.patch("web", &PatchParams::apply("team-deploy"), &Patch::Apply(&service)).await.unwrap();
    let store = env.s3_store(&env.bucket_prefix("node-ports"));
    backup_namespace(&client, &store, "ports", &namespace).await;
    wait_gone(&client, &namespace).await;

    let outcome = restore(&client, &store, restore_request("ports-back", "ports")).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed, "{:#?}", outcome.errors);
    let restored = services.get("web").await.unwrap();
    let ports = restored.spec.clone().unwrap().ports.unwrap();
    assert_eq!(ports[0].node_port, Some(explicit), "the explicit node port changed");
    assert!(ports[1].node_port.is_some_and(|p| p > 0), "the allocated node port was not allocated again");
    // Field ownership as it was: the applier still owns what it applied.
    let managers: Vec<(String, String)> = restored
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect();
    assert!(managers.contains(&("team-deploy".to_owned(), "Apply".to_owned())), "{managers:?}");
}

#[tokio::test]
async fn a_volume_and_its_claim_bind_again_and_an_unfinished_job_is_restored() {
    use k8s_openapi::api::{
        batch::v1::Job,
        core::v1::{PersistentVolume, PersistentVolumeClaim},
    };
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("bind-again").await;
    let volume = format!("pv-{namespace}");
    let class = format!("manual-{namespace}");
    let manifests = format!(
        r#"---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {volume}}}
spec:
  storageClassName: {class}
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: /tmp/{volume}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {namespace}}}
spec:
  storageClassName: {class}
  volumeName: {volume}
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: work, namespace: {namespace}}}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: w, image: registry.invalid/w:1}}]
"#
    );
    apply_manifests(&client, &manifests).await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let bound = |claims: Api<PersistentVolumeClaim>| async move {
        for _ in 0..120 {
            if claims.get("data").await.ok().and_then(|c| c.status?.phase).as_deref() == Some("Bound") {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    };
    assert!(bound(claims.clone()).await, "the claim never bound before the backup");
    let store = env.s3_store(&env.bucket_prefix("bind-again"));
    backup_namespace(&client, &store, "bound", &namespace).await;
    wait_gone(&client, &namespace).await;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    volumes.delete(&volume, &DeleteParams::default()).await.unwrap();
    for _ in 0..120 {
        if volumes.get_opt(&volume).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let outcome = restore(&client, &store, restore_request("bound-back", "bound")).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed, "{:#?}", outcome.errors);
    assert!(bound(claims).await, "the restored claim and volume did not bind again");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    assert!(jobs.get_opt("work").await.unwrap().is_some(), "the unfinished Job was not restored");
}
