//! Removing a node from the cluster: deleting its Node object once it is drained, and the script that cleans
//! the machine afterwards, run there by the operator: `kubeadm reset`, then what `kubeadm reset` says it leaves
//! (CNI configuration, iptables and IPVS rules, kubeconfigs), and the kubelet's and pods' directories and logs.

use cairn_kube::errors::is_not_found;
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client, api::DeleteParams};

use crate::NodeError;

/// Deletes the Node object `node`. Its pods are not touched here: drain it first.
pub async fn delete_node(client: &Client, node: &str) -> Result<(), NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.delete(node, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Err(NodeError::NotFound(node.to_owned())),
        Err(error) => Err(NodeError::kube(format!("deleting node {node}"), error)),
    }
}

/// The shell script that cleans the machine that was `node`, for its operator to run there as root. Every
/// step tolerates what is already gone, so it may be run twice.
pub fn cleanup_script(node: &str) -> String {
    format!(
        r#"#!/bin/sh
# Cleans the machine that was Kubernetes node {node}, removed with `cairn node remove {node}`.
# Run it as root on that machine. It deletes Kubernetes' state, configuration and logs there, and flushes
# the firewall rules kube-proxy and the network plugin wrote: nothing on the machine should still need them.
set -u
echo "== kubeadm reset (stops the kubelet's static pods, removes /etc/kubernetes and the kubelet's state)"
if command -v kubeadm >/dev/null 2>&1; then kubeadm reset --force; fi
echo "== stop the kubelet"
systemctl stop kubelet 2>/dev/null; systemctl disable kubelet 2>/dev/null
echo "== what kubeadm reset leaves: CNI configuration and state"
rm -rf /etc/cni/net.d /var/lib/cni /run/flannel /var/run/calico /var/lib/calico
echo "== the kubelet's, pods' and containers' files and logs; kubeconfigs"
rm -rf /var/lib/kubelet /etc/kubernetes /var/log/pods /var/log/containers /var/lib/dockershim
rm -rf /root/.kube
echo "== iptables rules of every table (kube-proxy, the network plugin)"
for table in filter nat mangle raw; do iptables -t "$table" -F 2>/dev/null; iptables -t "$table" -X 2>/dev/null; done
if command -v ip6tables >/dev/null 2>&1; then
  for table in filter nat mangle raw; do ip6tables -t "$table" -F 2>/dev/null; ip6tables -t "$table" -X 2>/dev/null; done
fi
echo "== IPVS tables (kube-proxy in ipvs mode)"
if command -v ipvsadm >/dev/null 2>&1; then ipvsadm --clear; fi
echo "== network interfaces the network plugins create"
for link in cni0 flannel.1 kube-ipvs0 kube-bridge tunl0 vxlan.calico weave; do
  ip link delete "$link" 2>/dev/null
done
echo "Done. Remove {node} from your monitoring, and reboot the machine to clear what is left in memory."
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cleanup_script_is_valid_shell_and_covers_what_kubeadm_reset_leaves() {
        let script = cleanup_script("node-7");
        for step in [
            "kubeadm reset --force",
            "/etc/cni/net.d",
            "iptables -t \"$table\" -F",
            "ipvsadm --clear",
            "/root/.kube",
            "/var/log/pods",
        ] {
            assert!(script.contains(step), "{step}");
        }
        assert!(script.starts_with("#!/bin/sh\n# Cleans the machine that was Kubernetes node node-7"));
        let check = std::process::Command::new("sh").args(["-n", "-c", &script]).status().expect("sh runs");
        assert!(check.success(), "the script does not parse");
    }
}
