//! `cairn node` against the real control plane, simulated nodes (KWOK) and the real node: the seed's drain,
//! a disruption budget that holds a drain up and says so, cordon and uncordon, the node list, and the join
//! command's token and hash.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Output, Stdio},
    time::Duration,
};

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use cairn_tests::{TestEnv, apply::apply_manifests, kwok::FakeNode, node::REAL_NODE_TAINT, oci::SHELL_IMAGE};
use k8s_openapi::api::{
    core::v1::{Node, Pod},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use support::nodes::{GROUP, eventually, group_node, placement, running};

fn cairn(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env_remove("CAIRN_STORAGE")
        .output()
        .expect("cairn runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The seed's workloads on the group's nodes: a DaemonSet, a Deployment of two, a StatefulSet of one, and the
/// bare pod `go-http` bound to `node`.
async fn seed_workloads(client: &Client, namespace: &str, group: &str, node: &str) {
    let spec = |extra: Value| {
        let mut spec = json!({"containers": [{"name": "app", "image": "registry.invalid/app:1"}]});
        for (key, value) in placement(group).as_object().unwrap().iter().chain(extra.as_object().unwrap()) {
            spec[key] = value.clone();
        }
        spec
    };
    let template = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": spec(json!({}))});
    let objects = [
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "go-http-deploy", "namespace": namespace},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "stateful-nginx", "namespace": namespace},
            "spec": {"replicas": 1, "serviceName": "stateful-nginx", "selector": {"matchLabels": {"app": "nginx"}}, "template": template("nginx")}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "go-http", "namespace": namespace},
            "spec": spec(json!({"nodeName": node}))}),
    ];
    let yaml: String = objects.iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect();
    apply_manifests(client, &yaml).await.unwrap();
}

#[tokio::test]
async fn the_seeds_drain_refuses_go_http_then_with_force_moves_every_pod_but_the_daemonsets() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("seed-drain").await;
    let group = env.unique_name("seed");
    let node1 = group_node(&client, &group, "node1").await;
    seed_workloads(&client, &namespace, &group, &node1).await;
    eventually(Duration::from_secs(60), "the seed's five pods running on node1", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (running(&client, &namespace, "").await.len() == 5).then_some(()) }
    })
    .await;
    let node2 = group_node(&client, &group, "node2").await;

    // The plan, before anything moves.
    let planned = cairn(&env, &["node", "drain", &node1, "--ignore-daemonsets", "--dry-run", "-o", "json"]);
    assert_eq!(planned.status.code(), Some(1), "the plan is refused: {}", text(&planned.stderr));
    let plan: Value = serde_json::from_slice(&planned.stdout).unwrap();
    let steps = plan[0]["pods"].as_array().unwrap();
    let step = |name: &str| steps.iter().find(|s| s["pod"]["name"] == name).unwrap().clone();
    assert_eq!(step("go-http")["refusedBy"], json!(["noController"]));
    assert_eq!(steps.iter().filter(|s| s["action"] == json!({"skip": "daemonSet"})).count(), 1, "{plan}");

    // Refused in kubectl's words, and the node is left as it was.
    let refused = cairn(&env, &["node", "drain", &node1, "--ignore-daemonsets"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot delete Pods declare no controller (use --force to override): {namespace}/go-http"
        )),
        "{stderr}"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    assert_ne!(nodes.get(&node1).await.unwrap().spec.unwrap().unschedulable, Some(true), "a refused drain cordoned");

    let forced = cairn(&env, &["node", "drain", &node1, "--ignore-daemonsets", "--force", "--timeout", "2m"]);
    let stdout = text(&forced.stdout);
    assert!(forced.status.success(), "{stdout}\n{}", text(&forced.stderr));
    assert!(text(&forced.stderr).contains("Warning: ignoring DaemonSet-managed Pods"), "{}", text(&forced.stderr));
    for line in [
        format!("node/{node1} cordoned"),
        format!("evicting pod {namespace}/go-http"),
        "pod/go-http evicted".into(),
        format!("node/{node1} drained"),
    ] {
        assert!(stdout.contains(&line), "{line:?} missing from\n{stdout}");
    }
    // The Deployment's and the StatefulSet's pods run on node2 now; go-http is gone; the DaemonSet's stays.
    eventually(Duration::from_secs(60), "the moved pods running on node2", || {
        let (client, namespace, node2) = (client.clone(), namespace.clone(), node2.clone());
        async move {
            let pods = running(&client, &namespace, "").await;
            let on =
                |prefix: &str, node: &str| pods.iter().filter(|(n, at)| n.starts_with(prefix) && at == node).count();
            (on("go-http-deploy", &node2) == 2 && on("stateful-nginx-0", &node2) == 1).then_some(())
        }
    })
    .await;
    let pods = running(&client, &namespace, "").await;
    assert!(!pods.iter().any(|(name, _)| name == "go-http"), "{pods:?}");
    assert!(pods.iter().any(|(name, node)| name.starts_with("agent") && node == &node1), "{pods:?}");
    let listed = text(&cairn(&env, &["node", "list", "-l", &format!("{GROUP}={group}")]).stdout);
    assert!(listed.lines().any(|l| l.starts_with(&node1) && l.contains("Ready,SchedulingDisabled")), "{listed}");
}

#[tokio::test]
async fn a_budget_that_allows_no_disruption_holds_the_drain_and_says_so_until_it_allows() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("budget-drain").await;
    let group = env.unique_name("budget");
    let node1 = group_node(&client, &group, "node1").await;
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {
        "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
        "nodeSelector": {GROUP: group}, "tolerations": [{"key": GROUP, "operator": "Exists"}],
    }});
    let objects = [
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}),
    ];
    let yaml: String = objects.iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect();
    apply_manifests(&client, &yaml).await.unwrap();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &namespace);
    eventually(Duration::from_secs(60), "two web pods running and the budget counting them", || {
        let budgets = budgets.clone();
        async move { (budgets.get("web").await.ok()?.status?.current_healthy == Some(2)).then_some(()) }
    })
    .await;
    group_node(&client, &group, "node2").await;

    let planned = text(&cairn(&env, &["node", "drain", &node1, "--dry-run"]).stdout);
    assert!(
        planned.contains(&format!(
            "waits: PodDisruptionBudget {namespace}/web allows no disruption now (2 healthy, 2 needed)"
        )),
        "{planned}"
    );
    let mut drain = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["node", "drain", &node1, "--timeout", "3m"])
        .env("KUBECONFIG", &env.info().kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(drain.stdout.take().unwrap()).lines();
    let held = format!("PodDisruptionBudget {namespace}/web allows 0 disruptions now (2 of 2 pods healthy, 2 needed)");
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("the drain says why it waits before it ends").unwrap();
        seen.push(line.clone());
        if line.contains("cannot be evicted yet") {
            assert!(line.contains(&held), "{line}");
            break;
        }
    }
    // The budget relents: one pod at a time may go, and the drain finishes.
    let patch = json!({"spec": {"minAvailable": 1}});
    budgets.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    seen.extend(lines.map_while(Result::ok));
    let status = drain.wait().unwrap();
    let seen = seen.join("\n");
    assert!(status.success(), "{seen}");
    assert!(seen.contains(&format!("node/{node1} drained")), "{seen}");
}

#[tokio::test]
async fn cordon_and_uncordon_by_selector_and_the_list_shows_requests_against_allocatable() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("node-list").await;
    let group = env.unique_name("list");
    let node1 = group_node(&client, &group, "node1").await;
    let node2 = group_node(&client, &group, "node2").await;
    let mut spec = placement(&group);
    spec["nodeName"] = json!(node1);
    spec["containers"] = json!([{"name": "app", "image": "registry.invalid/app:1", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]);
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sized", "namespace": namespace}, "spec": spec});
    apply_manifests(&client, &format!("---\n{}", serde_yaml_ng::to_string(&pod).unwrap())).await.unwrap();

    let selector = format!("{GROUP}={group}");
    let cordoned = text(&cairn(&env, &["node", "cordon", "-l", &selector]).stdout);
    assert_eq!(cordoned, format!("node/{node1} cordoned\nnode/{node2} cordoned\n"));
    let again = text(&cairn(&env, &["node", "cordon", &node1]).stdout);
    assert_eq!(again, format!("node/{node1} already cordoned\n"));
    let listed: Value =
        serde_json::from_slice(&cairn(&env, &["node", "list", "-l", &selector, "-o", "json"]).stdout).unwrap();
    let first = listed.as_array().unwrap().iter().find(|n| n["name"] == node1.as_str()).unwrap().clone();
    assert_eq!(first["status"], "Ready,SchedulingDisabled");
    assert_eq!(first["pods"], 1);
    assert_eq!(first["cpu"], json!({"requested": 1.0, "allocatable": 4.0}));
    assert_eq!(first["memory"]["requested"], 1024.0 * 1024.0 * 1024.0);
    assert!(
        first["taints"].as_array().unwrap().contains(&json!("node.kubernetes.io/unschedulable:NoSchedule")),
        "{first}"
    );
    let wide = text(&cairn(&env, &["node", "list", "-l", &selector, "-o", "wide"]).stdout);
    assert!(wide.starts_with("NAME") && wide.contains("1/4 (25%)") && wide.contains("TAINTS"), "{wide}");
    let uncordoned = text(&cairn(&env, &["node", "uncordon", &node1, &node2]).stdout);
    assert_eq!(uncordoned, format!("node/{node1} uncordoned\nnode/{node2} uncordoned\n"));
    let missing = cairn(&env, &["node", "cordon", "no-such-node"]);
    assert!(text(&missing.stderr).contains("node \"no-such-node\" does not exist"), "{}", text(&missing.stderr));
    let neither = cairn(&env, &["node", "cordon"]);
    assert!(text(&neither.stderr).contains("name the nodes"), "{}", text(&neither.stderr));
}

/// `sha256:` of the CA's public key, as kubeadm's documentation computes it, with openssl.
fn openssl_ca_hash(ca: &std::path::Path) -> String {
    let script = format!(
        "openssl x509 -pubkey -in '{}' | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex",
        ca.display()
    );
    let output = Command::new("sh").args(["-c", &script]).output().expect("openssl runs");
    let out = text(&output.stdout);
    format!("sha256:{}", out.trim().rsplit(' ').next().unwrap())
}

#[tokio::test]
async fn the_join_command_carries_a_token_that_authenticates_and_the_cas_hash() {
    let env = TestEnv::get();
    let client = env.client().await;
    let output = cairn(&env, &["node", "join-command", "--ttl", "1h", "-o", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let join: Value = serde_json::from_slice(&output.stdout).unwrap();
    let token = join["token"].as_str().unwrap();
    let id = join["tokenId"].as_str().unwrap();
    assert_eq!(join["caCertHashes"], json!([openssl_ca_hash(&env.info().state_dir.join("pki/ca.crt"))]));
    let port = env.info().apiserver_url.rsplit(':').next().unwrap();
    assert!(join["apiServer"].as_str().unwrap().ends_with(&format!(":{port}")), "{join}");
    assert_eq!(
        join["command"].as_str().unwrap(),
        format!(
            "kubeadm join {} --token {token} --discovery-token-ca-cert-hash {}",
            join["apiServer"].as_str().unwrap(),
            join["caCertHashes"][0].as_str().unwrap()
        )
    );
    let review = cairn_tests::identity::review_token(env.info(), token).await.unwrap();
    assert!(review.contains(&format!("system:bootstrap:{id}")), "{review}");
    assert!(review.contains("system:bootstrappers:kubeadm:default-node-token"), "{review}");
    // The bootstrap signer signs cluster-info for it: kubeadm's discovery will find its signature.
    cairn_tests::identity::wait_cluster_info_signed(&client, id).await;

    let line = text(&cairn(&env, &["node", "join-command", "--print-only"]).stdout);
    assert!(line.starts_with("kubeadm join ") && line.lines().count() == 1, "{line}");
    let refused = cairn(&env, &["node", "join-command", "--ttl", "10000h"]);
    assert!(text(&refused.stderr).contains("invalid --ttl"), "{}", text(&refused.stderr));
    assert!(cairn_tests::identity::review_token(env.info(), "abcdef.0123456789abcdef").await.is_err());
}

#[tokio::test]
async fn draining_the_real_node_really_stops_its_pods() {
    let env = TestEnv::get();
    let node = env.node();
    let client = env.client().await;
    let namespace = env.namespace("real-drain").await;
    // A sleep no other process runs: its absence from /proc shows the container stopped.
    let marker = format!("31{}", std::process::id());
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sleeper", "namespace": namespace},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "sleeper"}}, "template": {
        "metadata": {"labels": {"app": "sleeper"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node.name},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "sleep", "image": SHELL_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", marker]}],
        }}}});
    apply_manifests(&client, &format!("---\n{}", serde_yaml_ng::to_string(&deployment).unwrap())).await.unwrap();
    eventually(Duration::from_secs(90), "two sleepers running on the real node", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (running(&client, &namespace, "sleeper").await.len() == 2).then_some(()) }
    })
    .await;
    let sleeping = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            })
            .count()
    };
    assert_eq!(sleeping(), 2);

    let selector = "app=sleeper";
    // No other node can take them (their selector names the real node): the drain is refused first.
    let refused = cairn(&env, &["node", "drain", &node.name, "--pod-selector", selector]);
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("the nodes that stay have no room for 2 pod(s) (use --ignore-capacity"), "{stderr}");
    assert!(stderr.contains("other node(s) do not match its node selector or affinity"), "{stderr}");
    let drained = cairn(
        &env,
        &[
            "node",
            "drain",
            &node.name,
            "--ignore-daemonsets",
            "--ignore-capacity",
            "--pod-selector",
            selector,
            "--timeout",
            "2m",
        ],
    );
    // Counted before the node takes pods again: the Deployment's replacements would start new sleepers.
    let still_sleeping = sleeping();
    let uncordon = cairn(&env, &["node", "uncordon", &node.name]);
    assert!(drained.status.success(), "{}\n{}", text(&drained.stdout), text(&drained.stderr));
    assert!(uncordon.status.success());
    assert_eq!(text(&drained.stdout).matches("evicted").count(), 2, "{}", text(&drained.stdout));
    assert_eq!(still_sleeping, 0, "a drained pod's container still runs");
}

#[tokio::test]
async fn a_drain_the_other_nodes_have_no_room_for_is_refused_naming_the_pods_and_the_numbers() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("capacity").await;
    let group = env.unique_name("capacity");
    let node1 = group_node(&client, &group, "node1").await;
    let mut spec = placement(&group);
    spec["containers"] =
        json!([{"name": "app", "image": "registry.invalid/app:1", "resources": {"requests": {"cpu": "1500m"}}}]);
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "heavy", "namespace": namespace},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "heavy"}}, "template": {"metadata": {"labels": {"app": "heavy"}}, "spec": spec}}});
    apply_manifests(&client, &format!("---\n{}", serde_yaml_ng::to_string(&deployment).unwrap())).await.unwrap();
    eventually(Duration::from_secs(60), "two heavy pods running on node1", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (running(&client, &namespace, "heavy").await.len() == 2).then_some(()) }
    })
    .await;
    // node2 has 2 CPUs: room for one heavy pod, not two.
    let node2 = format!("{group}-node2");
    let mut small = FakeNode::new(&node2).label(GROUP, &group).taint(GROUP, &group, "NoSchedule");
    small.cpu = "2".into();
    small.create(&client).await;

    let refused = cairn(&env, &["node", "drain", &node1]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the nodes that stay have no room for 1 pod(s) (use --ignore-capacity to drain anyway)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "it requests 1.5 CPU and 0 MiB; the most free on the nodes that would take it ({node2}) is 0.50 CPU"
        )),
        "{stderr}"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    assert_ne!(nodes.get(&node1).await.unwrap().spec.unwrap().unschedulable, Some(true), "a refused drain cordoned");
    let planned = text(&cairn(&env, &["node", "drain", &node1, "--dry-run"]).stdout);
    assert!(planned.contains("no room: it requests 1.5 CPU"), "{planned}");

    let forced = cairn(&env, &["node", "drain", &node1, "--ignore-capacity", "--timeout", "2m"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    eventually(Duration::from_secs(60), "one heavy pod running on node2 and one pending", || {
        let (client, namespace, node2) = (client.clone(), namespace.clone(), node2.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let listed = pods.list(&ListParams::default().labels("app=heavy")).await.ok()?.items;
            let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            let on = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
            let on_node2 =
                listed.iter().filter(|p| phase(p) == "Running" && on(p).as_deref() == Some(node2.as_str())).count();
            let pending = listed.iter().filter(|p| phase(p) == "Pending").count();
            (on_node2 == 1 && pending == 1).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn remove_drains_deletes_the_node_and_prints_the_machines_cleanup_script() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("remove").await;
    let group = env.unique_name("remove");
    let node1 = group_node(&client, &group, "node1").await;
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": placement(&group)});
    let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template}});
    deployment["spec"]["template"]["spec"]["containers"] = json!([{"name": "app", "image": "registry.invalid/app:1"}]);
    apply_manifests(&client, &format!("---\n{}", serde_yaml_ng::to_string(&deployment).unwrap())).await.unwrap();
    eventually(Duration::from_secs(60), "the web pod running on node1", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (running(&client, &namespace, "web").await.len() == 1).then_some(()) }
    })
    .await;
    let node2 = group_node(&client, &group, "node2").await;

    // The namespaces of the node's pods are backed up first (standalone here, into a directory of the test's).
    let storage_dir = env.info().state_dir.join(format!("remove-backups-{group}"));
    let storage = format!("file://{}", storage_dir.display());
    let removed = cairn(
        &env,
        &[
            "node",
            "remove",
            &node1,
            "--ignore-daemonsets",
            "--timeout",
            "2m",
            "--backup",
            "--backup-name",
            "before-removal",
        ]
        .into_iter()
        .chain(["--storage", &storage])
        .collect::<Vec<_>>(),
    );
    let (stdout, stderr) = (text(&removed.stdout), text(&removed.stderr));
    assert!(removed.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("backing up namespace(s) {namespace} of the pods on node/{node1}")), "{stderr}");
    let described =
        cairn(&env, &["backup", "describe", "before-removal", "--details", "-o", "json", "--storage", &storage]);
    let described: Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(described["backup"]["status"]["phase"], "Completed", "{described}");
    assert_eq!(described["backup"]["metadata"]["labels"]["cairn.dev/removed-node"], node1.as_str(), "{described}");
    assert!(described["resourceList"].to_string().contains(&format!("{namespace}/web")), "{described}");
    assert!(
        stdout.starts_with(&format!("#!/bin/sh\n# Cleans the machine that was Kubernetes node {node1}")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("node/{node1} drained")) && stderr.contains(&format!("node/{node1} deleted")),
        "{stderr}"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    assert!(nodes.get_opt(&node1).await.unwrap().is_none(), "the Node is still there");
    eventually(Duration::from_secs(60), "the web pod running on node2", || {
        let (client, namespace, node2) = (client.clone(), namespace.clone(), node2.clone());
        async move { running(&client, &namespace, "web").await.iter().any(|(_, at)| at == &node2).then_some(()) }
    })
    .await;
    // The script alone needs no cluster.
    let script = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["node", "remove", &node1, "--cleanup-script"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert!(script.status.success(), "{}", text(&script.stderr));
    assert_eq!(text(&script.stdout), stdout);
}

#[tokio::test]
async fn three_nodes_drained_two_at_a_time_never_take_a_budget_below_its_minimum() {
    use futures::StreamExt;
    use kube::runtime::watcher;
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    let namespace = env.namespace("concurrent").await;
    let group = env.unique_name("concurrent");
    let mut drained = Vec::new();
    for suffix in ["node1", "node2", "node3"] {
        drained.push(group_node(&client, &group, suffix).await);
    }
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": placement(&group)});
    let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}}, "template": template}});
    deployment["spec"]["template"]["spec"]["containers"] = json!([{"name": "app", "image": "registry.invalid/app:1"}]);
    let budget = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"minAvailable": 4, "selector": {"matchLabels": {"app": "web"}}}});
    let yaml: String =
        [deployment, budget].iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect();
    apply_manifests(&client, &yaml).await.unwrap();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &namespace);
    eventually(Duration::from_secs(60), "six web pods healthy under the budget", || {
        let budgets = budgets.clone();
        async move { (budgets.get("web").await.ok()?.status?.current_healthy == Some(6)).then_some(()) }
    })
    .await;
    let on_drained = running(&client, &namespace, "web").await;
    assert!(on_drained.iter().all(|(_, node)| drained.contains(node)), "{on_drained:?}");
    group_node(&client, &group, "spare").await;

    // A watch of the pods counts the healthy ones (Ready, not being deleted) once listed, then after every
    // change; the drain runs on a blocking thread so that the watch goes on meanwhile.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let lowest = Arc::new(AtomicUsize::new(usize::MAX));
    let changes = Arc::new(AtomicUsize::new(0));
    let recorder = {
        let (lowest, changes) = (lowest.clone(), changes.clone());
        tokio::spawn(async move {
            let mut seen: std::collections::BTreeMap<String, Pod> = Default::default();
            let mut listed = false;
            let events = watcher(pods, watcher::Config::default().labels("app=web"));
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        seen.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                    }
                    watcher::Event::Delete(pod) => {
                        seen.remove(pod.metadata.name.as_deref().unwrap_or_default());
                    }
                    watcher::Event::Init => seen.clear(),
                    watcher::Event::InitDone => listed = true,
                }
                if !listed {
                    continue;
                }
                let healthy = seen
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| {
                        let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
                        conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                    })
                    .count();
                lowest.fetch_min(healthy, Ordering::SeqCst);
                changes.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    eventually(Duration::from_secs(30), "the watch to list the pods", || {
        let lowest = lowest.clone();
        async move { (lowest.load(Ordering::SeqCst) == 6).then_some(()) }
    })
    .await;
    let mut args: Vec<String> = ["node", "drain", "--concurrency", "2", "--timeout", "3m"].map(String::from).to_vec();
    args.extend(drained.iter().cloned());
    let drain_env = env;
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cairn(&drain_env, &args)
    })
    .await
    .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    for node in &drained {
        assert!(stdout.contains(&format!("[{node}] node/{node} drained")), "{stdout}");
    }
    eventually(Duration::from_secs(60), "six web pods running on the spare node", || {
        let (client, namespace, spare) = (client.clone(), namespace.clone(), format!("{group}-spare"));
        async move {
            (running(&client, &namespace, "web").await.iter().filter(|(_, at)| at == &spare).count() == 6).then_some(())
        }
    })
    .await;
    recorder.abort();
    // Every pod was evicted and replaced: the watch saw at least the 6 deletions and 6 new pods.
    assert!(changes.load(Ordering::SeqCst) >= 12, "the watch saw {} changes", changes.load(Ordering::SeqCst));
    let lowest = lowest.load(Ordering::SeqCst);
    assert!((4..=6).contains(&lowest), "the budget's minimum of 4 healthy pods was broken: {lowest} seen");
}
