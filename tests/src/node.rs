//! Real nodes for the test environment: containerd (Debian's, with runc) and a kubelet built from the
//! pinned Kubernetes module, with their state under the environment's directory, a pod network on a bridge
//! of its own with no route out, and the test images imported so that nothing is ever pulled. Everything it
//! leaves on the host (shims, containers, mounts, network namespaces, the bridge, cgroups) is removed by one
//! cleanup script, run when the node stops and, should the test process be killed, by a reaper that outlives
//! it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;

use crate::{
    EnvError,
    oci::{self, PAUSE_IMAGE},
    pod_network::PodNetwork,
    process::{Component, free_port},
};

/// The taint the real node carries: pods that tolerate it run there, from images imported beforehand.
pub const REAL_NODE_TAINT: &str = "cairn.dev/test-node";

/// What the node needs from the environment.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The kubelet binary.
    pub kubelet: PathBuf,
    /// The environment's admin kubeconfig (the kubelet uses it).
    pub kubeconfig: PathBuf,
    /// The cluster CA, for clients of the kubelet.
    pub ca_cert: PathBuf,
    /// The environment's state directory; the node's lives in `node/` inside it.
    pub state_dir: PathBuf,
    /// Images to import besides the pause and shell images.
    pub images: Vec<oci::ImageSpec>,
    /// The API server's port on 127.0.0.1 (pods reach it as the `kubernetes` Service).
    pub apiserver_port: u16,
}

/// What a node puts on the host, by name: its directory (containerd's and the kubelet's state, the mounts
/// of its containers and network namespaces), its cgroup, its bridge and its address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeFootprint {
    /// The node's directory.
    pub dir: PathBuf,
    /// Its cgroup, in every hierarchy.
    pub cgroup: String,
    /// Its pod network's bridge.
    pub bridge: String,
    /// Its address on the loopback interface.
    pub address: String,
    /// Its pod network's gateway address.
    pub pod_gateway: String,
}

/// How much of a node's footprint is on the host now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostTraces {
    /// Processes started for it: containerd, its shims, the kubelet, containers.
    pub processes: usize,
    /// Mounts under its directory.
    pub mounts: usize,
    /// Its cgroups, in all hierarchies.
    pub cgroups: usize,
    /// Its bridge (0 or 1).
    pub bridges: usize,
    /// Its address on the loopback interface (0 or 1).
    pub addresses: usize,
    /// Its pod network's iptables rules (those naming its bridge or its gateway), in all tables.
    pub iptables_rules: usize,
}

impl NodeFootprint {
    /// What of this node is on the host now.
    pub fn traces(&self) -> HostTraces {
        let dir = self.dir.display().to_string();
        let processes = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&dir))
            })
            .count();
        let mounts = std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .filter(|line| line.split(' ').nth(1).is_some_and(|point| point.starts_with(&dir)))
            .count();
        let cgroups = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|hierarchy| hierarchy.path().join(&self.cgroup).exists())
            .count();
        let output = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let bridges = usize::from(output("ip", &["-o", "link", "show"]).contains(&format!(": {}:", self.bridge)));
        let addresses =
            usize::from(output("ip", &["-o", "addr", "show", "dev", "lo"]).contains(&format!("{}/32", self.address)));
        let gateway = format!(" {}/32 ", self.pod_gateway);
        let iptables_rules = output("iptables-save", &[])
            .lines()
            .filter(|l| l.starts_with('-') && (l.contains(&format!(" {} ", self.bridge)) || l.contains(&gateway)))
            .count();
        HostTraces { processes, mounts, cgroups, bridges, addresses, iptables_rules }
    }
}

/// A running real node. Dropping it stops the kubelet and containerd and removes what they left on the host.
#[derive(Debug)]
pub struct RealNode {
    /// The Node's name.
    pub name: String,
    /// containerd's socket, for `ctr` and CRI clients.
    pub runtime_socket: PathBuf,
    /// What it puts on the host.
    pub footprint: NodeFootprint,
    /// Its pod network.
    pub network: PodNetwork,
    dir: PathBuf,
    cleanup: PathBuf,
    containerd: Option<Component>,
    kubelet: Option<Component>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> EnvError {
    move |error| EnvError::Io { what, error }
}

fn write(path: &Path, text: &str) -> Result<(), EnvError> {
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// A short random suffix shared by the node's name, cgroup and bridge (interface names have 15 characters).
fn suffix() -> String {
    crate::environment::random_hex(3)
}

impl RealNode {
    /// Starts containerd, imports the test images, starts the kubelet, and waits until its Node is Ready.
    pub fn start(config: &NodeConfig) -> Result<RealNode, EnvError> {
        let suffix = suffix();
        let name = format!("cairn-node-{suffix}");
        let dir = config.state_dir.join(format!("node-{suffix}"));
        for sub in ["containerd/root", "containerd/state", "cni/net.d", "cni/ipam", "kubelet", "manifests", "images"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(io(format!("creating {}", path.display())))?;
        }
        let cgroup = format!("cairn-{suffix}");
        let bridge = format!("cairn{suffix}");
        // The kubelet's address: the node IP may not be a loopback address, and nothing may leave the
        // machine, so the node gets a private address of its own on the loopback interface.
        let bytes = u32::from_str_radix(&suffix, 16).unwrap_or(1);
        let address = format!("10.255.{}.{}", (bytes >> 8) & 0xff, (bytes & 0xff).max(1));
        let network = PodNetwork::new(&bridge, bytes, config.apiserver_port);
        let cleanup = dir.join("cleanup.sh");
        write(&cleanup, &cleanup_script(&dir, &cgroup, &network, &address))?;
        spawn_reaper(&cleanup, &dir.join("stopped"))?;
        create_cgroup(&cgroup)?;
        add_address(&address)?;
        network.set_up()?;
        let runtime_socket = dir.join("containerd/containerd.sock");
        let containerd = start_containerd(
            &dir,
            &runtime_socket,
            &network,
            &config.state_dir.join(format!("logs/containerd-{suffix}.log")),
        )?;
        let footprint = NodeFootprint {
            dir: dir.clone(),
            cgroup: cgroup.clone(),
            bridge: bridge.clone(),
            address: address.clone(),
            pod_gateway: network.gateway.clone(),
        };
        let mut node = RealNode {
            name: name.clone(),
            runtime_socket: runtime_socket.clone(),
            footprint,
            network,
            dir: dir.clone(),
            cleanup,
            containerd: Some(containerd),
            kubelet: None,
        };
        for image in [oci::pause_image(), oci::shell_image()].iter().chain(&config.images) {
            oci::import(image, &runtime_socket, &dir.join("images"))?;
        }
        node.kubelet = Some(start_kubelet(config, &dir, &name, &cgroup, &address, &runtime_socket)?);
        Ok(node)
    }

    /// The node's directory (containerd's and the kubelet's state; their logs are in the environment's
    /// `logs/`, named after the node).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Imports `image` into the node's runtime.
    pub fn import(&self, image: &oci::ImageSpec) -> Result<(), EnvError> {
        oci::import(image, &self.runtime_socket, &self.dir.join("images"))
    }

    /// Stops the kubelet and containerd and removes everything they left on the host.
    fn stop(&mut self) {
        drop(self.kubelet.take());
        let _ = Command::new("sh").arg(&self.cleanup).status();
        drop(self.containerd.take());
        // The reaper's work is done: it runs the (idempotent) cleanup once more and ends.
        let _ = std::fs::write(self.dir.join("stopped"), b"");
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Puts `address` on the loopback interface.
fn add_address(address: &str) -> Result<(), EnvError> {
    let status = Command::new("ip")
        .args(["addr", "add", &format!("{address}/32"), "dev", "lo"])
        .status()
        .map_err(io("running ip (iproute2)".into()))?;
    if status.success() {
        return Ok(());
    }
    Err(EnvError::Io {
        what: format!("adding {address} to the loopback interface"),
        error: std::io::ErrorKind::Other.into(),
    })
}

/// Creates the node's cgroup, the kubelet's `cgroupRoot`, in every cgroup v1 hierarchy: its pods live
/// under it, apart from the host's and from other environments'. cpuset's must be given its CPUs and memory
/// nodes before anything can join it.
fn create_cgroup(cgroup: &str) -> Result<(), EnvError> {
    let root = Path::new("/sys/fs/cgroup");
    let hierarchies = std::fs::read_dir(root).map_err(io(format!("listing {}", root.display())))?;
    for hierarchy in hierarchies.flatten().map(|e| e.path()) {
        if hierarchy.file_name().is_some_and(|n| n == "unified") || !hierarchy.join("cgroup.procs").exists() {
            continue;
        }
        let own = hierarchy.join(cgroup);
        std::fs::create_dir_all(&own).map_err(io(format!("creating {}", own.display())))?;
        for setting in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = std::fs::read_to_string(hierarchy.join(setting)) {
                std::fs::write(own.join(setting), value.trim())
                    .map_err(io(format!("setting {setting} of {}", own.display())))?;
            }
        }
    }
    Ok(())
}

fn start_containerd(dir: &Path, socket: &Path, network: &PodNetwork, log: &Path) -> Result<Component, EnvError> {
    let path = |p: &str| dir.join(p).display().to_string();
    let config = format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{net}"
"#,
        root = path("containerd/root"),
        state = path("containerd/state"),
        socket = socket.display(),
        net = path("cni/net.d"),
    );
    let config_file = dir.join("containerd.toml");
    write(&config_file, &config)?;
    let cni = network.cni_config(&path("cni/ipam"));
    write(&dir.join("cni/net.d/10-cairn.conflist"), &cni.to_string())?;
    let args = vec!["--config".to_owned(), config_file.display().to_string()];
    let mut containerd = Component::start("containerd", Path::new("containerd"), &args, log.to_path_buf(), vec![])?;
    write(&dir.join("containerd.pid"), &containerd.pid().to_string())?;
    containerd.wait_until(Duration::from_secs(30), || runtime_answers(socket))?;
    Ok(containerd)
}

fn runtime_answers(socket: &Path) -> bool {
    Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_kubelet(
    config: &NodeConfig,
    dir: &Path,
    name: &str,
    cgroup: &str,
    address: &str,
    socket: &Path,
) -> Result<Component, EnvError> {
    let (port, healthz) = (free_port()?, free_port()?);
    let configuration = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": format!("/{cgroup}"),
        "address": address,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": config.ca_cert.display().to_string()},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": format!("unix://{}", socket.display()),
        "staticPodPath": dir.join("manifests").display().to_string(),
        "resolvConf": "",
        "oomScoreAdj": 0,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "failSwapOn": false,
        "registerNode": true,
        // Only pods meant for the real node land on it: the others would try to pull their images.
        "registerWithTaints": [{"key": REAL_NODE_TAINT, "value": "real", "effect": "NoSchedule"}],
        "serializeImagePulls": false,
        "nodeStatusReportFrequency": "5s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "localStorageCapacityIsolation": false,
    });
    let config_file = dir.join("kubelet.json");
    write(&config_file, &configuration.to_string())?;
    let args = vec![
        format!("--config={}", config_file.display()),
        format!("--kubeconfig={}", config.kubeconfig.display()),
        format!("--root-dir={}", dir.join("kubelet").display()),
        format!("--cert-dir={}", dir.join("kubelet/pki").display()),
        format!("--hostname-override={name}"),
        format!("--node-ip={address}"),
        "--v=1".into(),
    ];
    let log = config.state_dir.join(format!("logs/kubelet-{}.log", name.trim_start_matches("cairn-node-")));
    let mut kubelet = Component::start("kubelet", &config.kubelet, &args, log, vec![port, healthz])?;
    write(&dir.join("kubelet.pid"), &kubelet.pid().to_string())?;
    kubelet.wait_until(Duration::from_secs(90), || node_ready(&config.kubeconfig, name))?;
    Ok(kubelet)
}

/// Whether the Node `name` reports Ready.
fn node_ready(kubeconfig: &Path, name: &str) -> bool {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return false };
    runtime.block_on(async {
        let Ok(client) = crate::shared::client_from(kubeconfig).await else { return false };
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
        let Ok(Some(node)) = nodes.get_opt(name).await else { return false };
        node.status
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

/// The script that removes what the node leaves on the host, idempotent: every process in the node's
/// cgroups (containers, pause), containerd's shims, the kubelet and containerd, every mount under the node's
/// directory (container root file systems, network namespaces, volumes), the cgroups, the pod network's
/// rules and bridge, the node's address.
fn cleanup_script(dir: &Path, cgroup: &str, network: &PodNetwork, address: &str) -> String {
    let dir = dir.display();
    let network = network.cleanup_commands();
    format!(
        r#"#!/bin/sh
# Removes what the test node in {dir} left on the host. Safe to run more than once.
dir='{dir}'
cgroup='{cgroup}'
for pidfile in "$dir/kubelet.pid"; do [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null; done
for procs in $(find /sys/fs/cgroup/*/"$cgroup" -name cgroup.procs 2>/dev/null); do
  for pid in $(cat "$procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
done
for pid in $(pgrep -f "containerd-shim.*$dir" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
[ -f "$dir/containerd.pid" ] && kill -9 "$(cat "$dir/containerd.pid")" 2>/dev/null
sleep 0.3
awk -v dir="$dir" 'index($2, dir) == 1 {{ print $2 }}' /proc/mounts | sort -r | while read -r mount; do
  umount -l "$mount" 2>/dev/null
done
for hierarchy in /sys/fs/cgroup/*/"$cgroup"; do
  [ -d "$hierarchy" ] && find "$hierarchy" -depth -type d -exec rmdir {{}} \; 2>/dev/null
done
{network}ip addr del '{address}/32' dev lo 2>/dev/null
exit 0
"#
    )
}

/// Starts a process, in a session of its own, that runs `cleanup` once this test process has gone, however
/// it went (a killed test process runs no destructor), or once `stopped` exists (the node was stopped).
fn spawn_reaper(cleanup: &Path, stopped: &Path) -> Result<(), EnvError> {
    let watched = std::process::id();
    let script = format!(
        "while [ -e /proc/{watched} ] && [ ! -e '{}' ]; do sleep 1; done; exec sh '{}'",
        stopped.display(),
        cleanup.display()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(io("starting the node's reaper (setsid)".into()))
}
