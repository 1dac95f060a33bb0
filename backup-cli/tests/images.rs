//! `cairn image` against the real control plane and simulated nodes (KWOK): the inventory from the nodes'
//! reported images, lint on the seed's kind of workloads, and image updates with a recorded cause, their
//! history and rollback for a Deployment, a DaemonSet and a StatefulSet.

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use std::{process::Output, time::Duration};

use cairn_tests::{TestEnv, apply::apply_manifests, kwok::FakeNode};
use serde_json::{Value, json};
use support::nodes::{GROUP, eventually, placement, running};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn cairn(env: &TestEnv, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env_remove("CAIRN_STORAGE")
        .env_remove("CAIRN_NAMESPACE")
        .output()
        .expect("cairn runs")
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn apply(client: &kube::Client, objects: &[Value]) {
    let yaml: String = objects.iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect();
    apply_manifests(client, &yaml).await.unwrap();
}

/// A pod template on the group's simulated nodes running `image` in container `app`.
fn template(group: &str, app: &str, image: &str) -> Value {
    let mut spec = placement(group);
    spec["containers"] = json!([{"name": "app", "image": image}]);
    json!({"metadata": {"labels": {"app": app}}, "spec": spec})
}

#[tokio::test]
async fn the_inventory_shows_each_nodes_images_their_pods_and_what_is_unused() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("img-list").await;
    let group = env.unique_name("img-list");
    let web = format!("registry.example/{group}/web");
    let (node1, node2) = (format!("{group}-node1"), format!("{group}-node2"));
    for node in [&node1, &node2] {
        FakeNode::new(node.as_str())
            .label(GROUP, &group)
            .taint(GROUP, &group, "NoSchedule")
            .image(&[&format!("{web}:v2"), &format!("{web}@{DIGEST}")], 50_000_000)
            .image(&[&format!("{web}:v1")], 40_000_000)
            .create(&client)
            .await;
    }
    let mut pod_spec = template(&group, "web", &format!("{web}:v2"))["spec"].clone();
    pod_spec["nodeName"] = json!(node1);
    apply(&client, &[json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": namespace}, "spec": pod_spec})])
        .await;
    eventually(Duration::from_secs(60), "the web pod running", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (!running(&client, &namespace, "web").await.is_empty()).then_some(()) }
    })
    .await;

    let selector = format!("{GROUP}={group}");
    let listed = json_of(&cairn(&env, &["image", "list", "-l", &selector, "-o", "json"]));
    let images = listed["images"].as_array().unwrap();
    let current = images.iter().find(|i| i["image"] == format!("{web}@{DIGEST}")).unwrap();
    assert_eq!(current["nodes"], json!([node1, node2]));
    assert_eq!(current["pods"], json!([format!("{namespace}/web")]));
    assert_eq!(current["sizeBytes"], 50_000_000);
    let nodes = listed["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["unusedBytes"], 40_000_000, "on node1 only v1 is unused: {listed}");
    assert_eq!(nodes[1]["unusedBytes"], 90_000_000, "no pod runs on node2: {listed}");
    assert_eq!(listed["totalBytes"], 180_000_000);

    let unused = json_of(&cairn(&env, &["image", "list", "--node", &node1, "--unused", "-o", "json"]));
    let names: Vec<&str> = unused["images"].as_array().unwrap().iter().map(|i| i["image"].as_str().unwrap()).collect();
    assert_eq!(names, [format!("{web}:v1")]);
    let table = String::from_utf8(cairn(&env, &["image", "list", "-l", &selector]).stdout).unwrap();
    assert!(table.contains("RECLAIMABLE") && table.contains("TOTAL: 2 images"), "{table}");
    let missing = cairn(&env, &["image", "list", "--node", "no-such-node"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("node \"no-such-node\" does not exist"));
}

#[tokio::test]
async fn lint_flags_the_seeds_kind_of_images_and_fails_a_ci_step() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("img-lint").await;
    let pinned = format!("registry.example/hellok8s:v1.1.2-20231010-fixPayModule@{DIGEST}");
    let mut always = json!({"metadata": {"labels": {"app": "pinned"}}, "spec": {"containers": [{"name": "app", "image": pinned, "imagePullPolicy": "Always"}]}});
    let clean =
        json!({"metadata": {"labels": {"app": "clean"}}, "spec": {"containers": [{"name": "app", "image": pinned}]}});
    let deployment = |name: &str, template: &Value| {
        let app = template["metadata"]["labels"]["app"].clone();
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": app}}, "template": template}})
    };
    always["spec"]["nodeSelector"] = json!({"nowhere": "true"});
    apply(
        &client,
        &[
            deployment("pinned-always", &always),
            deployment("clean", &clean),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "go-http", "namespace": namespace},
                "spec": {"nodeSelector": {"nowhere": "true"}, "containers": [{"name": "go-http", "image": "leigg/go_http"}]}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "stateful-nginx", "namespace": namespace},
                "spec": {"replicas": 0, "serviceName": "nginx", "selector": {"matchLabels": {"app": "nginx"}},
                    "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "calico-node", "namespace": namespace},
                "spec": {"selector": {"matchLabels": {"app": "calico"}},
                    "template": {"metadata": {"labels": {"app": "calico"}}, "spec": {"nodeSelector": {"nowhere": "true"},
                        "containers": [{"name": "calico-node", "image": "docker.io/calico/node:stable"}]}}}}),
        ],
    )
    .await;

    let linted = cairn(&env, &["image", "lint", "-n", &namespace, "-o", "json"]);
    assert_eq!(linted.status.code(), Some(1), "anything flagged fails: {}", String::from_utf8_lossy(&linted.stderr));
    let findings: Value = serde_json::from_slice(&linted.stdout).unwrap();
    let flagged: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                format!("{}/{}", f["kind"].as_str().unwrap(), f["name"].as_str().unwrap()),
                f["rule"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |workload: &str, rule: &str| {
        assert!(
            flagged.contains(&(workload.to_owned(), rule.to_owned())),
            "{workload} {rule} missing from {flagged:?}"
        );
    };
    expect("Pod/go-http", "untagged");
    expect("StatefulSet/stateful-nginx", "latest-tag");
    expect("DaemonSet/calico-node", "unversioned-tag");
    expect("DaemonSet/calico-node", "no-digest");
    expect("Deployment/pinned-always", "always-pull-pinned");
    assert!(!flagged.iter().any(|(w, _)| w == "Deployment/clean"), "{flagged:?}");

    let ignored = cairn(
        &env,
        &[
            "image",
            "lint",
            "-n",
            &namespace,
            "--ignore",
            "no-digest,latest-tag,untagged,unversioned-tag,always-pull-pinned",
        ],
    );
    assert!(ignored.status.success(), "{}", String::from_utf8_lossy(&ignored.stdout));
    let unknown = cairn(&env, &["image", "lint", "-n", &namespace, "--ignore", "spelling"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such rule; the rules are invalid, latest-tag"));
}

#[tokio::test]
async fn set_records_the_cause_history_shows_it_and_rollback_restores_each_workload_kind() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("img-rollout").await;
    let group = env.unique_name("img-rollout");
    FakeNode::new(format!("{group}-node1"))
        .label(GROUP, &group)
        .taint(GROUP, &group, "NoSchedule")
        .create(&client)
        .await;
    let v1 = "registry.example/shop/app:v1.0.0-20261201-first";
    let v2 = "registry.example/shop/app:v1.1.0-20261202-fixPayModule";
    let selector = |app: &str| json!({"matchLabels": {"app": app}});
    apply(
        &client,
        &[
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
                "spec": {"replicas": 2, "selector": selector("web"), "template": template(&group, "web", v1)}}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": namespace},
                "spec": {"selector": selector("agent"), "template": template(&group, "agent", v1)}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": namespace},
                "spec": {"replicas": 1, "serviceName": "db", "selector": selector("db"), "template": template(&group, "db", v1)}}),
        ],
    )
    .await;

    for workload in ["deploy/web", "ds/agent", "sts/db"] {
        // The first revision exists once the controller has seen the workload.
        eventually(Duration::from_secs(60), &format!("{workload}'s first revision"), || {
            let namespace = namespace.clone();
            async move {
                let history = json_of(&cairn(&env, &["image", "history", workload, "-n", &namespace, "-o", "json"]));
                (history.as_array().unwrap().len() == 1).then_some(())
            }
        })
        .await;
        let change = format!("app={v2}");
        let set = json_of(&cairn(
            &env,
            &["image", "set", workload, &change, "--cause", "fix the pay module", "-n", &namespace, "-o", "json"],
        ));
        assert_eq!(set, json!([{"container": "app", "from": v1, "to": v2}]), "{workload}");
        let history = eventually(Duration::from_secs(60), &format!("{workload}'s second revision"), || {
            let namespace = namespace.clone();
            async move {
                let history = json_of(&cairn(&env, &["image", "history", workload, "-n", &namespace, "-o", "json"]));
                let revisions = history.as_array().unwrap().clone();
                (revisions.len() == 2 && revisions[1]["current"] == true).then_some(revisions)
            }
        })
        .await;
        assert_eq!(history[1]["images"], json!([format!("app={v2}")]), "{workload}: {history:?}");
        assert_eq!(history[1]["cause"], "fix the pay module", "{workload}: {history:?}");
        assert_eq!(history[0]["images"], json!([format!("app={v1}")]), "{workload}: {history:?}");

        let rolled = cairn(&env, &["image", "rollback", workload, "-n", &namespace, "--timeout", "2m", "-o", "json"]);
        let rolled = json_of(&rolled);
        assert_eq!(
            (rolled["to"].as_i64(), rolled["rolledOut"].as_bool()),
            (Some(1), Some(true)),
            "{workload}: {rolled}"
        );
        let history = json_of(&cairn(&env, &["image", "history", workload, "-n", &namespace, "-o", "json"]));
        let current: Vec<&Value> = history.as_array().unwrap().iter().filter(|r| r["current"] == true).collect();
        assert_eq!(current.len(), 1, "{workload}: {history}");
        assert_eq!(current[0]["images"], json!([format!("app={v1}")]), "{workload}: {history}");
        assert!(
            current[0]["cause"].as_str().unwrap_or_default().starts_with("rollback to revision 1"),
            "{workload}: {history}"
        );
    }

    let same = cairn(&env, &["image", "rollback", "deploy/web", "-n", &namespace, "--to-revision", "9"]);
    assert!(
        String::from_utf8_lossy(&same.stderr).contains("revision 9 is not kept"),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let wrong = cairn(&env, &["image", "set", "deploy/web", "sidecar=app:v1", "-n", &namespace]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("has no container \"sidecar\"; its containers: app"));
}

/// An image named `name` whose content is its own (a link naming it), so that the runtime gives it an ID of
/// its own rather than another tag of the shell image.
fn distinct_image(name: &str) -> cairn_tests::oci::ImageSpec {
    let mut image = cairn_tests::oci::shell_image();
    image.name = name.to_owned();
    image.files.push(cairn_tests::oci::ImageFile::Link { path: "etc/image-name".into(), target: name.into() });
    image
}

#[tokio::test]
async fn prune_on_the_real_node_removes_only_what_nothing_needs_and_the_rollback_then_runs_without_a_pull() {
    let env = TestEnv::get();
    let node = env.node();
    let client = env.client().await;
    let namespace = env.namespace("img-prune").await;
    let work = env.info().state_dir.join(format!("prune-images-{namespace}"));
    std::fs::create_dir_all(&work).unwrap();
    let names = [
        "cairn.test/prune-app:v1",
        "cairn.test/prune-app:v2",
        "cairn.test/prune-unused:v1",
        "cairn.test/prune-kept:v1",
        "cairn.test/prune-backup:v1",
    ];
    for name in names {
        cairn_tests::oci::import(&distinct_image(name), &node.runtime_socket, &work).unwrap();
    }
    let spec = |image: &str| {
        json!({"nodeSelector": {"kubernetes.io/hostname": node.name},
            "tolerations": [{"key": cairn_tests::node::REAL_NODE_TAINT, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]})
    };
    apply(
        &client,
        &[json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "prune"}},
                "template": {"metadata": {"labels": {"app": "prune"}}, "spec": spec(names[0])}}})],
    )
    .await;
    let rollout = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-n", namespace.as_str(), "--timeout", "2m", "-o", "json"]);
        all.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>()
    };
    // v1 runs, then v2 replaces it: v1 is left only in the old ReplicaSet (the rollback history).
    eventually(Duration::from_secs(90), "the app running v1", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (running(&client, &namespace, "app").await.len() == 1).then_some(()) }
    })
    .await;
    let change = format!("app={}", names[1]);
    let set = cairn(&env, &["image", "set", "deploy/app", &change, "-n", &namespace]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    eventually(Duration::from_secs(90), "only the v2 pod running", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move {
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), &namespace);
            let all = pods.list(&Default::default()).await.ok()?.items;
            let images: Vec<String> = all
                .iter()
                .filter(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                        && p.metadata.deletion_timestamp.is_none()
                })
                .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
                .collect();
            (all.len() == 1 && images == [names[1]]).then_some(())
        }
    })
    .await;

    // A workload that exists only in a retained backup once deleted: a restore of it needs its image.
    apply(
        &client,
        &[json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "archived", "namespace": namespace},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "archived"}},
                "template": {"metadata": {"labels": {"app": "archived"}}, "spec": spec(names[4])}}})],
    )
    .await;
    let storage = format!("file://{}", work.join("backups").display());
    let backed_up =
        cairn(&env, &["backup", "create", "before-prune", "--include-namespaces", &namespace, "--storage", &storage]);
    assert!(backed_up.status.success(), "{}", String::from_utf8_lossy(&backed_up.stderr));
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), &namespace);
    deployments.delete("archived", &kube::api::DeleteParams::foreground()).await.unwrap();
    eventually(Duration::from_secs(60), "the archived Deployment and its ReplicaSet gone", || {
        let client = client.clone();
        let namespace = namespace.clone();
        async move {
            let sets: kube::Api<k8s_openapi::api::apps::v1::ReplicaSet> = kube::Api::namespaced(client, &namespace);
            let left = sets.list(&Default::default()).await.ok()?.items;
            (!left.iter().any(|rs| rs.metadata.name.as_deref().is_some_and(|n| n.starts_with("archived"))))
                .then_some(())
        }
    })
    .await;

    let endpoint = format!("unix://{}", node.runtime_socket.display());
    let prune = |dry_run: bool| {
        let mut args = vec![
            "image",
            "prune",
            "--runtime-endpoint",
            endpoint.as_str(),
            "--keep",
            "cairn.test/prune-kept:*",
            "--keep",
            "cairn.dev/test/*",
            "-o",
            "json",
            "--storage",
            storage.as_str(),
        ];
        if dry_run {
            args.push("--dry-run");
        }
        json_of(&cairn(&env, &args))
    };
    let verdict = |report: &Value, name: &str| -> Option<(String, String)> {
        report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == name))
            .map(|i| (i["verdict"].as_str().unwrap().to_owned(), i["reason"].as_str().unwrap().to_owned()))
    };
    // The v1 pod's exited container stays in the runtime until the kubelet's container GC (every minute)
    // removes it, and until then v1 is rightly "in use": wait for that before reading the reasons.
    let in_use = |report: &Value, name: &str| verdict(report, name).is_some_and(|(_, why)| why.starts_with("in use"));
    eventually(Duration::from_secs(150), "the kubelet removing the v1 pod's exited container", || {
        let report = prune(true);
        std::future::ready((!in_use(&report, names[0])).then_some(()))
    })
    .await;
    let planned = prune(true);
    let reason = |name: &str| verdict(&planned, name).unwrap_or_else(|| panic!("{name} missing from {planned}"));
    assert_eq!(reason(names[1]).0, "keep");
    assert!(reason(names[1]).1.starts_with("in use by container(s) app"), "{planned}");
    assert!(
        reason(names[0]).1.contains("is named by ReplicaSet") && reason(names[0]).1.contains("(rollback history)"),
        "{planned}"
    );
    assert_eq!(
        reason(names[2]),
        ("remove".to_owned(), "no container uses it and nothing in the cluster names it".to_owned())
    );
    assert!(reason(names[3]).1.contains("matches the keep-list pattern"), "{planned}");
    assert!(reason(names[4]).1.contains("is named by backup before-prune (kept until"), "{planned}");
    assert_eq!(reason(cairn_tests::oci::PAUSE_IMAGE).1, "the runtime's sandbox (pause) image", "{planned}");
    assert_eq!(planned["removed"], 1, "{planned}");
    assert!(verdict(&prune(true), names[2]).is_some(), "a dry run removed something");

    let pruned = prune(false);
    assert_eq!((pruned["removed"].as_u64(), pruned["dryRun"].as_bool()), (Some(1), Some(false)), "{pruned}");
    assert!(pruned["bytesFreed"].as_u64().unwrap() > 0);
    let after = prune(true);
    assert!(verdict(&after, names[2]).is_none(), "the unused image is still there: {after}");
    for kept in [names[0], names[1], names[3], names[4], cairn_tests::oci::PAUSE_IMAGE] {
        assert!(verdict(&after, kept).is_some(), "{kept} was removed: {after}");
    }

    // The rollback to v1 runs with imagePullPolicy Never: it can only start because the prune kept v1.
    let back =
        cairn(&env, &rollout(&["image", "rollback", "deploy/app"]).iter().map(String::as_str).collect::<Vec<_>>());
    let back = json_of(&back);
    assert_eq!((back["to"].as_i64(), back["rolledOut"].as_bool()), (Some(1), Some(true)), "{back}");
}
