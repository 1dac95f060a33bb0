//! Drains the server carries out (`cairn node drain --server`, NodeMaintenance objects) against the real
//! control plane, simulated nodes and `backup-server`: a drain held up by a budget that survives a server
//! restart and ends once the budget allows, deletion that uncordons, and deadlines that stop and uncordon
//! or escalate to deletion, each saying which.

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use std::time::Duration;

use cairn_api::{MaintenancePhase, NodeMaintenance};
use cairn_tests::{
    TestEnv,
    apply::apply_manifests,
    server::{ServerProcess, install_crds},
};
use k8s_openapi::api::{core::v1::Node, policy::v1::PodDisruptionBudget};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use support::{
    cairn,
    nodes::{eventually, group_node, placement, running},
    server_binary,
};

/// A Deployment `name` of `replicas` pods on the group's nodes, with a budget that wants `min_available`.
async fn guarded_deployment(
    client: &Client,
    namespace: &str,
    group: &str,
    name: &str,
    replicas: u32,
    min_available: u32,
) {
    let mut template = json!({"metadata": {"labels": {"app": name}}, "spec": placement(group)});
    template["spec"]["containers"] = json!([{"name": "app", "image": "registry.invalid/app:1"}]);
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template}});
    let budget = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": name}}}});
    let yaml: String =
        [deployment, budget].iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect();
    apply_manifests(client, &yaml).await.unwrap();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
    eventually(Duration::from_secs(60), "the pods healthy under their budget", || {
        let budgets = budgets.clone();
        async move { (budgets.get(name).await.ok()?.status?.current_healthy == Some(replicas as i32)).then_some(()) }
    })
    .await;
}

async fn cordoned(client: &Client, node: &str) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.get(node).await.unwrap().spec.unwrap().unschedulable == Some(true)
}

/// Waits until the NodeMaintenance `name` satisfies `check`, and returns it.
async fn maintenance_when(
    api: &Api<NodeMaintenance>,
    name: &str,
    what: &str,
    check: impl Fn(&NodeMaintenance) -> bool,
) -> NodeMaintenance {
    let check = &check;
    eventually(Duration::from_secs(90), what, || async move { api.get(name).await.ok().filter(|m| check(m)) }).await
}

fn start_server(env: &TestEnv, namespace: &str, identity: &str) -> ServerProcess {
    ServerProcess::start(&server_binary(), env, namespace, identity, &["--leader-elect", "false"])
        .unwrap_or_else(|e| panic!("starting backup-server: {e}"))
}

#[tokio::test]
async fn a_server_drain_held_by_a_budget_survives_a_restart_and_deleting_it_uncordons() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    install_crds(&client).await;
    let server_namespace = env.namespace("nm-server").await;
    let namespace = env.namespace("nm-app").await;
    let group = env.unique_name("nm");
    let node1 = group_node(&client, &group, "node1").await;
    guarded_deployment(&client, &namespace, &group, "web", 2, 2).await;
    group_node(&client, &group, "node2").await;
    // No server runs yet: the drain is refused rather than left waiting for one.
    let refused = cairn(&env, &server_namespace, &["node", "drain", &node1, "--server", "--no-wait"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("no Cairn server"), "{stderr}");
    let mut first = start_server(&env, &server_namespace, "first");

    let created = cairn(
        &env,
        &server_namespace,
        &["node", "drain", &node1, "--server", "--reason", "kernel upgrade", "--no-wait", "-o", "json"],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(created["spec"]["reason"], "kernel upgrade");
    let api: Api<NodeMaintenance> = Api::namespaced(client.clone(), &server_namespace);

    // The budget holds the drain up, and the status says which budget and why.
    let held = format!("PodDisruptionBudget {namespace}/web allows 0 disruptions now (2 of 2 pods healthy, 2 needed)");
    let blocked = maintenance_when(&api, &name, &format!("a pod shown held up\n{}", first.tail()), |m| {
        let nodes = m.status.as_ref().map(|s| s.nodes.clone()).unwrap_or_default();
        nodes.iter().flat_map(|n| &n.pods).any(|p| p.state == "HeldUp" && p.blocker.as_deref() == Some(held.as_str()))
    })
    .await;
    assert_eq!(blocked.phase(), MaintenancePhase::Draining);
    assert!(blocked.finalizers().contains(&cairn_api::UNCORDON_FINALIZER.to_owned()));
    assert!(cordoned(&client, &node1).await);

    // The server dies mid-drain; the drain does not, and a new server takes it up.
    first.kill();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &namespace);
    budgets.patch("web", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"minAvailable": 1}}))).await.unwrap();
    let second = start_server(&env, &server_namespace, "second");
    let done =
        maintenance_when(&api, &name, &format!("the drain to end\n{}", second.tail()), |m| m.phase().is_final()).await;
    let status = done.status.clone().unwrap();
    assert_eq!(done.phase(), MaintenancePhase::Drained, "{status:?}\n{}", second.tail());
    assert!(status.message.as_deref().unwrap_or_default().contains("resumed"), "{status:?}");
    assert_eq!((status.nodes[0].pods_gone, status.nodes[0].pods_to_move), (2, 2), "{status:?}");
    assert!(running(&client, &namespace, "web").await.iter().all(|(_, node)| node != &node1));
    assert!(cordoned(&client, &node1).await, "a drained node stays cordoned while its maintenance lasts");

    // Deleting the maintenance ends it: the node is uncordoned and the object goes.
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), "the object gone", || {
        let api = api.clone();
        let name = name.clone();
        async move { api.get_opt(&name).await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(!cordoned(&client, &node1).await, "deleting the maintenance did not uncordon {node1}");
}

#[tokio::test]
async fn a_deadline_stops_and_uncordons_or_escalates_to_deletion_and_says_which() {
    let env = TestEnv::get();
    env.kwok();
    let client = env.client().await;
    install_crds(&client).await;
    let server_namespace = env.namespace("nm-deadline").await;
    let namespace = env.namespace("nm-deadline-app").await;
    let group = env.unique_name("deadline");
    let node1 = group_node(&client, &group, "node1").await;
    guarded_deployment(&client, &namespace, &group, "web", 2, 2).await;
    group_node(&client, &group, "node2").await;
    let server = start_server(&env, &server_namespace, "only");

    // Stop and uncordon (the default): followed from the CLI, which exits 1 and says why.
    let stopped = cairn(&env, &server_namespace, &["node", "drain", &node1, "--server", "--deadline", "3s"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&stopped.stdout), String::from_utf8_lossy(&stopped.stderr));
    assert_eq!(stopped.status.code(), Some(1), "{stdout}\n{stderr}\n{}", server.tail());
    assert!(stdout.contains("cannot be evicted yet") && stdout.contains("DeadlineExceeded"), "{stdout}");
    assert!(stdout.contains("the drain stopped and the nodes were uncordoned (deadlineAction Uncordon)"), "{stdout}");
    assert!(!cordoned(&client, &node1).await);
    assert_eq!(running(&client, &namespace, "web").await.iter().filter(|(_, n)| n == &node1).count(), 2);

    // Escalate to deletion: the pods go although the budget never allows it.
    let escalated = cairn(
        &env,
        &server_namespace,
        &["node", "drain", &node1, "--server", "--deadline", "3s", "--deadline-action", "delete", "-o", "json"],
    );
    let stderr = String::from_utf8_lossy(&escalated.stderr);
    assert!(escalated.status.success(), "{stderr}\n{}", server.tail());
    let report: Value = serde_json::from_slice(&escalated.stdout).unwrap();
    assert_eq!(report["status"]["phase"], "Drained", "{report}");
    let message = report["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("deleted without consulting their disruption budgets (deadlineAction Delete)"),
        "{report}"
    );
    let pods = report["status"]["nodes"][0]["pods"].as_array().unwrap();
    assert!(pods.iter().all(|p| p["action"] == "delete" && p["state"] == "Gone"), "{report}");
    assert!(cordoned(&client, &node1).await);

    // A maintenance naming a node that does not exist fails validation, naming it.
    let api: Api<NodeMaintenance> = Api::namespaced(client.clone(), &server_namespace);
    let missing: NodeMaintenance = serde_json::from_value(json!({
        "apiVersion": "cairn.dev/v1", "kind": "NodeMaintenance", "metadata": {"name": "typo"},
        "spec": {"nodes": ["no-such-node"]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &missing).await.unwrap();
    let failed = maintenance_when(&api, "typo", "validation", |m| m.phase().is_final()).await;
    assert_eq!(failed.phase(), MaintenancePhase::FailedValidation);
    let error = failed.status.unwrap().last_error.unwrap();
    assert!(error.contains("node \"no-such-node\" does not exist"), "{error}");
}
