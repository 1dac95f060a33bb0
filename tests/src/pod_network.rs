//! The real node's pod network: a bridge of its own with a gateway address on the host, and nothing routed
//! out. Pods reach two things through it, by the rules a cluster's network and kube-proxy would give them:
//! the `kubernetes` Service (its cluster IP is sent to the API server on the loopback interface), and the
//! host's loopback services at the gateway address (`gateway:port` is sent to `127.0.0.1:port`, for pods and
//! for the host alike; the test S3 server is reached that way). Every rule is undone by the commands
//! [`PodNetwork::cleanup_commands`] gives.

use std::process::Command;

use serde_json::json;

use crate::EnvError;

/// The `kubernetes` Service's cluster IP (the first of the API server's `--service-cluster-ip-range`).
pub const KUBERNETES_SERVICE_IP: &str = "10.0.0.1";

/// A node's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// The bridge's name.
    pub bridge: String,
    /// The pods' subnet, a /24.
    pub subnet: String,
    /// The bridge's address on the host: the pods' default gateway, and where they reach the host's
    /// loopback services.
    pub gateway: String,
    /// The API server's port on 127.0.0.1.
    apiserver_port: u16,
}

impl PodNetwork {
    /// The network named `bridge`, on a /24 chosen from `seed` (so that nodes of several environments on one
    /// machine do not collide), for an API server on `127.0.0.1:apiserver_port`.
    pub fn new(bridge: &str, seed: u32, apiserver_port: u16) -> PodNetwork {
        let prefix = format!("10.{}.{}", 128 + ((seed >> 8) & 0x3f), seed & 0xff);
        PodNetwork {
            bridge: bridge.to_owned(),
            subnet: format!("{prefix}.0/24"),
            gateway: format!("{prefix}.1"),
            apiserver_port,
        }
    }

    /// The iptables rules, as `(table, chain, rule)`.
    fn rules(&self) -> Vec<(&'static str, &'static str, Vec<String>)> {
        let bridge = self.bridge.as_str();
        let words = |text: String| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        vec![
            (
                "nat",
                "PREROUTING",
                words(format!(
                    "-i {bridge} -d {KUBERNETES_SERVICE_IP}/32 -p tcp --dport 443 -j DNAT --to-destination \
                     127.0.0.1:{}",
                    self.apiserver_port
                )),
            ),
            (
                "nat",
                "PREROUTING",
                words(format!("-i {bridge} -d {}/32 -p tcp -j DNAT --to-destination 127.0.0.1", self.gateway)),
            ),
            // The host itself reaches the same services at the same address: a storage location written for
            // pods works for the CLI too.
            ("nat", "OUTPUT", words(format!("-d {}/32 -p tcp -j DNAT --to-destination 127.0.0.1", self.gateway))),
            ("filter", "FORWARD", words(format!("-i {bridge} ! -o {bridge} -j DROP"))),
        ]
    }

    /// Creates the bridge with its gateway address, lets it carry traffic for loopback addresses
    /// (`route_localnet`, which the rules to 127.0.0.1 need), and adds the rules.
    pub fn set_up(&self) -> Result<(), EnvError> {
        let bridge = self.bridge.as_str();
        run("ip", &["link", "add", "name", bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &format!("{}/24", self.gateway), "dev", bridge])?;
        run("ip", &["link", "set", bridge, "up"])?;
        let setting = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
        std::fs::write(&setting, b"1").map_err(|error| EnvError::Io { what: format!("writing {setting}"), error })?;
        for (table, chain, rule) in self.rules() {
            let mut args = vec!["-w", "-t", table, "-A", chain];
            args.extend(rule.iter().map(String::as_str));
            run("iptables", &args)?;
        }
        Ok(())
    }

    /// Shell commands that remove the rules and the bridge, each harmless when already gone.
    pub fn cleanup_commands(&self) -> String {
        let mut script = String::new();
        for (table, chain, rule) in self.rules() {
            let rule = rule.iter().map(|word| format!("'{word}'")).collect::<Vec<_>>().join(" ");
            script.push_str(&format!("while iptables -w -t {table} -D {chain} {rule} 2>/dev/null; do :; done\n"));
        }
        script.push_str(&format!("ip link del '{}' 2>/dev/null\n", self.bridge));
        script
    }

    /// The CNI configuration: the bridge plugin on this bridge, pods given addresses of the subnet and a
    /// default route through the gateway, nothing masqueraded.
    pub fn cni_config(&self, ipam_dir: &str) -> serde_json::Value {
        json!({
            "cniVersion": "0.4.0",
            "name": "cairn-pods",
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }],
        })
    }
}

/// Runs `program` with `args`, its stderr in the error when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), EnvError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| EnvError::Io { what: format!("running {program}"), error })?;
    if output.status.success() {
        return Ok(());
    }
    Err(EnvError::Io {
        what: format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()),
        error: std::io::ErrorKind::Other.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subnet_and_gateway_follow_the_seed() {
        let network = PodNetwork::new("cairnabc", 0x01_02_03, 6443);
        assert_eq!(network.subnet, "10.130.3.0/24");
        assert_eq!(network.gateway, "10.130.3.1");
        let cleanup = network.cleanup_commands();
        assert!(cleanup.contains("'--to-destination' '127.0.0.1:6443'"), "{cleanup}");
        assert!(cleanup.ends_with("ip link del 'cairnabc' 2>/dev/null\n"));
    }
}
