//! Prunes of other nodes through their image agents, against the real control plane and the real node's
//! containerd: `cairn image prune --node` (an ImagePrune carried out by `cairn image agent`, run here as the
//! node's agent) with the age and count rules, a node without an agent reported as such, and an
//! ImagePrunePolicy of `backup-server` keeping what a retained backup in its location names, summed up in its
//! status and metrics. The real prunes remove only images with a known, old build time: every other image on
//! the node has none, and `--older-than` keeps those.

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use std::{path::Path, time::Duration};

use cairn_api::{AccessMode, ImagePrune, ImagePrunePolicy, agent_lease_name};
use cairn_tests::{
    TestEnv,
    oci::{ImageFile, ImageSpec, shell_image},
    process::Component,
    server::{ServerProcess, create_s3_location, install_crds},
};
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::{Value, json};
use support::{cairn, nodes::eventually, server_binary, succeeded};

/// An image `name` of its own content, built at `created` (RFC 3339) when given.
fn dated_image(name: &str, created: Option<&str>) -> ImageSpec {
    let mut image = shell_image();
    image.name = name.to_owned();
    image.files.push(ImageFile::Link { path: "etc/image-name".into(), target: name.into() });
    image.created = created.map(str::to_owned);
    image
}

fn import(env: &TestEnv, images: &[ImageSpec]) {
    let work = env.info().state_dir.join(env.unique_name("prune-nodes-images"));
    std::fs::create_dir_all(&work).unwrap();
    for image in images {
        cairn_tests::oci::import(image, &env.node().runtime_socket, &work).unwrap();
    }
}

/// `cairn image agent` for the real node, taking the ImagePrunes of `namespace`; once its Lease is there.
async fn start_agent(env: &TestEnv, client: &Client, namespace: &str) -> Component {
    let node = env.node();
    let args: Vec<String> = [
        "image",
        "agent",
        "--node-name",
        node.name.as_str(),
        "--runtime-endpoint",
        &format!("unix://{}", node.runtime_socket.display()),
        "--namespace",
        namespace,
        "--kubeconfig",
        &env.info().kubeconfig.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let log = env.info().state_dir.join("logs").join(format!("image-agent-{namespace}.log"));
    let agent = Component::start("cairn-image-agent", Path::new(env!("CARGO_BIN_EXE_cairn")), &args, log, vec![])
        .expect("the agent starts");
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let lease = agent_lease_name(&node.name);
    eventually(Duration::from_secs(30), "the agent's Lease", || {
        let (leases, lease) = (leases.clone(), lease.clone());
        async move { leases.get_opt(&lease).await.ok().flatten().map(|_| ()) }
    })
    .await;
    agent
}

fn verdict_of<'a>(images: &'a Value, name: &str) -> Option<(&'a str, &'a str, &'a str)> {
    images
        .as_array()?
        .iter()
        .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == name))
        .map(|i| (i["verdict"].as_str().unwrap(), i["category"].as_str().unwrap(), i["reason"].as_str().unwrap()))
}

fn node_report<'a>(report: &'a Value, node: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("{node} missing: {report}"))
}

#[tokio::test]
async fn prune_through_the_nodes_agent_applies_age_and_count_rules_and_names_nodes_without_one() {
    let env = TestEnv::get();
    let client = env.client().await;
    install_crds(&client).await;
    let namespace = env.namespace("prune-nodes").await;
    let node = env.node().name;
    let repo = format!("cairn.test/{}", env.unique_name("agent-lib"));
    let fresh = format!("cairn.test/{}:1", env.unique_name("agent-fresh"));
    let undated = format!("cairn.test/{}:1", env.unique_name("agent-undated"));
    let now = jiff::Timestamp::now().to_string();
    let lib = |v: u32| format!("{repo}:{v}");
    import(
        &env,
        &[
            dated_image(&lib(1), Some("2020-01-01T00:00:00Z")),
            dated_image(&lib(2), Some("2020-02-01T00:00:00Z")),
            dated_image(&lib(3), Some("2020-03-01T00:00:00Z")),
            dated_image(&fresh, Some(&now)),
            dated_image(&undated, None),
        ],
    );
    env.kwok();
    let no_agent = env.unique_name("no-agent");
    cairn_tests::kwok::FakeNode::new(&no_agent)
        .taint("cairn.dev/test-group", &no_agent, "NoSchedule")
        .create(&client)
        .await;

    // Without an agent anywhere: refused, naming the way to get one.
    let refused = cairn(&env, &namespace, &["image", "prune", "--node", &node, "--dry-run"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("cairn install --image-agent"), "{stderr}");

    let _agent = start_agent(&env, &client, &namespace).await;
    let prune = |extra: &[&str]| {
        let mut args = vec!["image", "prune", "--node", node.as_str(), "--timeout", "2m", "-o", "json"];
        args.extend(extra);
        cairn(&env, &namespace, &args)
    };
    let by_age = prune(&["--dry-run", "--older-than", "720h"]);
    let report: Value = serde_json::from_slice(&by_age.stdout).unwrap();
    assert!(by_age.status.success(), "{report} {}", String::from_utf8_lossy(&by_age.stderr));
    let images = &node_report(&report, &node)["images"];
    for v in 1..=3 {
        assert_eq!(verdict_of(images, &lib(v)).map(|v| v.0), Some("remove"), "{report}");
    }
    let (verdict, category, reason) = verdict_of(images, &fresh).unwrap();
    assert_eq!((verdict, category), ("keep", "age"));
    assert!(reason.starts_with("built ") && reason.ends_with("within --older-than 720h0m0s"), "{reason}");
    let (verdict, _, reason) = verdict_of(images, &undated).unwrap();
    assert!(verdict == "keep" && reason.starts_with("its build time is unknown"), "{reason}");
    assert_eq!(
        verdict_of(images, cairn_tests::oci::PAUSE_IMAGE).map(|v| v.1),
        Some("sandbox"),
        "the pause image: {report}"
    );

    // The inventory from the runtime itself: every image (not the kubelet's 50), and what a prune would free.
    let listed = cairn(&env, &namespace, &["image", "list", "--from-runtime", "--node", &node, "-o", "json"]);
    let inventory: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let row = &inventory["nodes"][0];
    assert_eq!((row["node"].as_str(), row["source"].as_str()), (Some(node.as_str()), Some("runtime")), "{inventory}");
    assert!(row["prunableBytes"].as_u64().unwrap() > 0, "{inventory}");
    assert!(
        inventory["images"].as_array().unwrap().iter().any(|i| i["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == undated.as_str())),
        "{inventory}"
    );

    let by_count = prune(&["--dry-run", "--keep-last", "2", "--node", &no_agent]);
    let report: Value = serde_json::from_slice(&by_count.stdout).unwrap();
    assert!(!by_count.status.success(), "a node without an agent must fail the command: {report}");
    let images = &node_report(&report, &node)["images"];
    assert_eq!(verdict_of(images, &lib(1)).map(|v| v.0), Some("remove"), "{report}");
    for kept in [lib(2), lib(3)] {
        let (verdict, category, reason) = verdict_of(images, &kept).unwrap();
        assert_eq!((verdict, category), ("keep", "keepLast"), "{reason}");
        assert_eq!(reason, format!("one of the 2 most recently built images of {repo} (--keep-last)"));
    }
    let missing = node_report(&report, &no_agent);
    assert_eq!(missing["phase"], "NoAgent");
    assert!(missing["message"].as_str().unwrap().contains("cairn install --image-agent"), "{missing}");

    // The real run: only the oldest of the repository goes (the others are among the 2 newest, and every
    // image without a build time is kept by --older-than).
    let real = prune(&["--older-than", "720h", "--keep-last", "2", "--keep", "cairn.dev/*"]);
    let report: Value = serde_json::from_slice(&real.stdout).unwrap();
    assert!(real.status.success(), "{report}");
    let node_part = node_report(&report, &node);
    let removed: Vec<&str> = node_part["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["verdict"] == "remove")
        .flat_map(|i| i["names"].as_array().unwrap().iter().filter_map(Value::as_str))
        .filter(|n| !n.contains('@'))
        .collect();
    assert_eq!(removed, [lib(1).as_str()], "{report}");
    assert!(node_part["bytesFreed"].as_u64().unwrap() > 0, "{report}");
    let after: Value = serde_json::from_slice(&prune(&["--dry-run"]).stdout).unwrap();
    let images = &node_report(&after, &node)["images"];
    assert!(verdict_of(images, &lib(1)).is_none(), "{after}");
    assert!(verdict_of(images, &lib(2)).is_some() && verdict_of(images, &fresh).is_some(), "{after}");

    // Each prune is an object the agent finished, labelled with its node.
    let prunes: Api<ImagePrune> = Api::namespaced(client.clone(), &namespace);
    let listed = prunes.list(&ListParams::default().labels(&format!("cairn.dev/node={node}"))).await.unwrap().items;
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().all(|p| p.phase() == cairn_api::PrunePhase::Completed));
}

#[tokio::test]
async fn a_prune_policy_keeps_what_the_servers_backups_name_and_sums_each_run_up() {
    let env = TestEnv::get();
    let client = env.client().await;
    install_crds(&client).await;
    let namespace = env.namespace("prune-policy").await;
    let apps = env.namespace("prune-policy-app").await;
    let node = env.node().name;
    let archived = format!("cairn.test/{}:v1", env.unique_name("policy-archived"));
    let unused = format!("cairn.test/{}:v1", env.unique_name("policy-unused"));
    import(
        &env,
        &[dated_image(&archived, Some("2020-01-01T00:00:00Z")), dated_image(&unused, Some("2020-01-01T00:00:00Z"))],
    );
    create_s3_location(&client, &env, &namespace, "default", &env.unique_name("prune-policy"), AccessMode::ReadWrite)
        .await;
    let server = ServerProcess::start(&server_binary(), &env, &namespace, "policy", &["--leader-elect", "false"])
        .expect("the server starts");
    let _agent = start_agent(&env, &client, &namespace).await;

    // A workload that lives on only in a backup once deleted: a restore of it needs its image.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &apps);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "archived"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "archived"}},
            "template": {"metadata": {"labels": {"app": "archived"}},
                "spec": {"containers": [{"name": "app", "image": archived, "imagePullPolicy": "Never"}]}}}}))
    .unwrap();
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    let backup = env.unique_name("before-prune");
    succeeded(cairn(&env, &namespace, &["backup", "create", &backup, "--include-namespaces", &apps, "--wait"]));
    deployments.delete("archived", &DeleteParams::foreground()).await.unwrap();
    eventually(Duration::from_secs(60), "the archived Deployment gone with its ReplicaSets", || {
        let client = client.clone();
        let apps = apps.clone();
        async move {
            let sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client, &apps);
            sets.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
        }
    })
    .await;

    let policies: Api<ImagePrunePolicy> = Api::namespaced(client.clone(), &namespace);
    let policy: ImagePrunePolicy = serde_json::from_value(json!({
        "apiVersion": "cairn.dev/v1", "kind": "ImagePrunePolicy", "metadata": {"name": "nightly"},
        "spec": {"schedule": "@every 1h", "nodeSelector": format!("kubernetes.io/hostname={node}"),
            "dryRun": true, "olderThan": "720h"}}))
    .unwrap();
    policies.create(&PostParams::default(), &policy).await.unwrap();
    let done = eventually(Duration::from_secs(120), "the policy's first run finished", || {
        let policies = policies.clone();
        async move {
            let status = policies.get("nightly").await.ok()?.status?;
            (status.last_run_finished && status.nodes.len() == 1).then_some(status)
        }
    })
    .await;
    assert_eq!(done.nodes[0].phase, "Completed", "{done:?}");
    assert!(done.last_kept_by_reason.get("backup").is_some_and(|n| *n >= 1), "{done:?}");
    assert!(done.last_kept_by_reason.get("sandbox") == Some(&1), "{done:?}");
    assert!(done.last_bytes_freed > 0, "the unused image would be freed: {done:?}");

    let prunes: Api<ImagePrune> = Api::namespaced(client.clone(), &namespace);
    let run = prunes.get(&done.nodes[0].image_prune).await.unwrap();
    let images = serde_json::to_value(&run.status.unwrap().images).unwrap();
    let (verdict, category, reason) = verdict_of(&images, &archived).unwrap();
    assert_eq!((verdict, category), ("keep", "backup"), "{reason}");
    assert!(reason.contains(&format!("is named by backup {backup} (kept until")), "{reason}");
    assert_eq!(verdict_of(&images, &unused).map(|v| (v.0, v.1)), Some(("remove", "unused")), "{images}");
    assert_eq!(run.metadata.owner_references.unwrap()[0].name, "nightly");

    let (code, metrics) = server.http_get("/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("cairn_image_prune_runs_total{policy=\"nightly\"} 1"), "{metrics}");
    assert!(metrics.contains("cairn_image_prune_images_kept{policy=\"nightly\",reason=\"backup\"}"), "{metrics}");
    // A dry run frees nothing.
    assert!(metrics.contains("cairn_image_prune_bytes_freed_total{policy=\"nightly\"} 0"), "{metrics}");
}
