//! Whether the nodes that stay can take the pods a drain moves, checked before anything moves and without
//! I/O. The pods a controller will recreate are placed, largest CPU request first, on the schedulable nodes
//! that are not being drained, by the scheduler's hard rules this check knows: the node is Ready and not
//! cordoned; the pod's `nodeSelector` and required node affinity match its labels (and `metadata.name`
//! fields); the pod tolerates its `NoSchedule` and `NoExecute` taints; its free CPU, memory and pod slots
//! cover the pod's requests. Not checked: inter-pod (anti-)affinity, topology spread constraints, host
//! ports, volume topology and extended resources. A pod no node can take is named with the reason.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration};

use crate::inventory::{holds_resources, node_of, pod_request};

/// A pod that would have nowhere to go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shortfall {
    /// `namespace/name`.
    pub pod: String,
    /// Why no node takes it, counted over the candidate nodes.
    pub reason: String,
}

/// What is left on a node as pods are placed on it.
struct Room<'a> {
    node: &'a Node,
    name: &'a str,
    cpu: f64,
    memory: f64,
    pods: f64,
}

fn ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn allocatable(node: &Node, resource: &str) -> f64 {
    let value = node.status.as_ref().and_then(|s| s.allocatable.as_ref()).and_then(|a| a.get(resource));
    value.and_then(|q| cairn_kube::quantity::parse_quantity(&q.0)).unwrap_or(0.0)
}

/// Whether a toleration covers a taint (the scheduler's rule: key, operator, value, effect).
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = toleration.key.as_deref().is_none_or(|k| k.is_empty() || k == taint.key);
    // Exists matches any value (and with an empty key, any taint); Equal, the default, the taint's value.
    let exists = toleration.operator.as_deref() == Some("Exists");
    let value_ok =
        exists || toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default();
    effect_ok && key_ok && value_ok
}

fn untolerated(pod: &Pod, node: &Node) -> bool {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn requirement_met(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |text: &str| text.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => value.and_then(number).zip(values.first().and_then(|x| number(x))).is_some_and(|(v, x)| v > x),
        "Lt" => value.and_then(number).zip(values.first().and_then(|x| number(x))).is_some_and(|(v, x)| v < x),
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node, labels: &BTreeMap<String, String>) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    let name = node.metadata.name.as_deref();
    expressions.iter().all(|r| requirement_met(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| r.key == "metadata.name" && requirement_met(r, name))
}

fn selects(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = &pod.spec else { return true };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec.node_selector.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref());
    let affinity_ok = required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node, &labels)));
    selector_ok && affinity_ok
}

/// Whether a controller will recreate the pod elsewhere (a bare pod is gone for good; a DaemonSet's stays).
fn recreated(pod: &Pod) -> bool {
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    owners.iter().any(|o| o.controller == Some(true) && o.kind != "DaemonSet")
}

/// Places `moving` (the pods the drains move) on `nodes` other than `draining`, given every bound `pods`;
/// returns the pods that find no room.
pub fn check(moving: &[&Pod], nodes: &[Node], pods: &[Pod], draining: &BTreeSet<String>) -> Vec<Shortfall> {
    let mut used: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for pod in pods.iter().filter(|p| holds_resources(p)) {
        if let Some(node) = node_of(pod) {
            let entry = used.entry(node).or_default();
            *entry = (entry.0 + pod_request(pod, "cpu"), entry.1 + pod_request(pod, "memory"), entry.2 + 1.0);
        }
    }
    let mut rooms: Vec<Room> = nodes
        .iter()
        .filter_map(|node| {
            let name = node.metadata.name.as_deref()?;
            let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
            (!draining.contains(name) && !cordoned && ready(node)).then(|| {
                let (cpu, memory, count) = used.get(name).copied().unwrap_or_default();
                Room {
                    node,
                    name,
                    cpu: allocatable(node, "cpu") - cpu,
                    memory: allocatable(node, "memory") - memory,
                    pods: allocatable(node, "pods") - count,
                }
            })
        })
        .collect();
    let mut moving: Vec<&Pod> = moving.iter().copied().filter(|p| recreated(p)).collect();
    moving.sort_by(|a, b| pod_request(b, "cpu").total_cmp(&pod_request(a, "cpu")));
    let mut shortfalls = Vec::new();
    for pod in moving {
        let (cpu, memory) = (pod_request(pod, "cpu"), pod_request(pod, "memory"));
        let fits = |room: &Room| room.cpu >= cpu && room.memory >= memory && room.pods >= 1.0;
        let candidates: Vec<usize> =
            (0..rooms.len()).filter(|&i| selects(pod, rooms[i].node) && !untolerated(pod, rooms[i].node)).collect();
        // The roomiest candidate, as the scheduler's default scoring leans to.
        let chosen = candidates
            .iter()
            .copied()
            .filter(|&i| fits(&rooms[i]))
            .max_by(|&a, &b| rooms[a].cpu.total_cmp(&rooms[b].cpu));
        match chosen {
            Some(i) => {
                rooms[i].cpu -= cpu;
                rooms[i].memory -= memory;
                rooms[i].pods -= 1.0;
            }
            None => shortfalls.push(Shortfall {
                pod: format!(
                    "{}/{}",
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.metadata.name.as_deref().unwrap_or_default()
                ),
                reason: no_room_reason(pod, &rooms, &candidates, cpu, memory),
            }),
        }
    }
    shortfalls
}

fn no_room_reason(pod: &Pod, rooms: &[Room], candidates: &[usize], cpu: f64, memory: f64) -> String {
    if rooms.is_empty() {
        return "no other node is Ready and schedulable".into();
    }
    let unselected = rooms.iter().filter(|r| !selects(pod, r.node)).count();
    let tainted = rooms.iter().filter(|r| selects(pod, r.node) && untolerated(pod, r.node)).count();
    let mut parts = Vec::new();
    if !candidates.is_empty() {
        let most_cpu = candidates.iter().map(|&i| rooms[i].cpu).fold(f64::MIN, f64::max);
        let most_memory = candidates.iter().map(|&i| rooms[i].memory).fold(f64::MIN, f64::max);
        let names: Vec<&str> = candidates.iter().map(|&i| rooms[i].name).collect();
        parts.push(format!(
            "it requests {cpu} CPU and {:.0} MiB; the most free on the nodes that would take it ({}) is {:.2} CPU and \
             {:.0} MiB",
            memory / 1048576.0,
            names.join(", "),
            most_cpu.max(0.0),
            most_memory.max(0.0) / 1048576.0
        ));
    }
    if tainted > 0 {
        parts.push(format!("{tainted} other node(s) have taints it does not tolerate"));
    }
    if unselected > 0 {
        parts.push(format!("{unselected} other node(s) do not match its node selector or affinity"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, extra: serde_json::Value) -> Node {
        let mut value = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]},
        });
        for (key, part) in extra.as_object().unwrap() {
            for (inner, v) in part.as_object().unwrap() {
                value[key][inner] = v.clone();
            }
        }
        serde_json::from_value(value).unwrap()
    }

    fn pod(name: &str, node: &str, cpu: &str, extra: serde_json::Value) -> Pod {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "shop", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Running"},
        });
        for (key, v) in extra.as_object().unwrap() {
            value["spec"][key] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    fn draining(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn pods_that_fit_on_the_remaining_nodes_raise_nothing() {
        let nodes = [node("a", "4", json!({})), node("b", "4", json!({}))];
        let pods =
            [pod("web-1", "a", "1", json!({})), pod("web-2", "a", "2", json!({})), pod("busy", "b", "1", json!({}))];
        let moving: Vec<&Pod> = pods[..2].iter().collect();
        assert!(check(&moving, &nodes, &pods, &draining(&["a"])).is_empty());
    }

    #[test]
    fn a_pod_too_big_for_what_is_left_is_named_with_the_numbers() {
        let nodes = [node("a", "4", json!({})), node("b", "4", json!({}))];
        let pods = [pod("big", "a", "3", json!({})), pod("busy", "b", "2", json!({}))];
        let shortfalls = check(&[&pods[0]], &nodes, &pods, &draining(&["a"]));
        assert_eq!(shortfalls.len(), 1);
        assert_eq!(shortfalls[0].pod, "shop/big");
        assert!(
            shortfalls[0].reason.contains("requests 3 CPU") && shortfalls[0].reason.contains("is 2.00 CPU"),
            "{shortfalls:?}"
        );
    }

    #[test]
    fn selectors_affinity_and_taints_rule_nodes_out() {
        let nodes = [
            node("a", "4", json!({})),
            node(
                "gpu",
                "8",
                json!({"metadata": {"labels": {"kubernetes.io/hostname": "gpu", "gpu": "yes"}}, "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}}),
            ),
            node("plain", "8", json!({})),
        ];
        let wants_gpu = pod("trainer", "a", "1", json!({"nodeSelector": {"gpu": "yes"}}));
        let tolerating = pod(
            "trainer-2",
            "a",
            "1",
            json!({"nodeSelector": {"gpu": "yes"}, "tolerations": [{"key": "gpu", "operator": "Exists"}]}),
        );
        let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["plain", "gpu"]}]},
        ]}}});
        let nowhere = pod("picky", "a", "1", json!({"affinity": affinity}));
        let pods = [wants_gpu.clone(), tolerating.clone(), nowhere.clone()];
        let shortfalls = check(&[&wants_gpu, &tolerating, &nowhere], &nodes, &pods, &draining(&["a"]));
        let named: Vec<(&str, &str)> = shortfalls.iter().map(|s| (s.pod.as_str(), s.reason.as_str())).collect();
        assert_eq!(named.len(), 2, "{named:?}");
        assert_eq!(named[0].0, "shop/trainer");
        assert!(named[0].1.contains("1 other node(s) have taints it does not tolerate"), "{named:?}");
        assert_eq!(named[1].0, "shop/picky");
        assert!(named[1].1.contains("2 other node(s) do not match its node selector or affinity"), "{named:?}");
    }

    #[test]
    fn cordoned_and_drained_nodes_take_nothing_and_bare_pods_need_no_room() {
        let nodes = [
            node("a", "4", json!({})),
            node("b", "4", json!({"spec": {"unschedulable": true}})),
            node("c", "4", json!({})),
        ];
        let web = pod("web", "a", "1", json!({}));
        let mut bare = pod("bare", "a", "1", json!({}));
        bare.metadata.owner_references = None;
        let shortfalls = check(&[&web, &bare], &nodes, &[web.clone(), bare.clone()], &draining(&["a", "c"]));
        assert_eq!(
            shortfalls,
            [Shortfall { pod: "shop/web".into(), reason: "no other node is Ready and schedulable".into() }]
        );
    }
}
