//! `cairn-testenv`: the local test environment for people and the demo (`up`, `env`, `status`, `down`).
//!
//! `up` starts a detached supervisor (`serve`) that owns the processes, so they all stop together when it
//! is told to (`down`) or dies.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::{Api, api::ListParams};
use serde::Serialize;

use cairn_tests::{
    EnvInfo, Environment, apply::apply_manifests, binaries::cache_dir, process::log_tail, shared::client_from,
};

/// A local Kubernetes control plane and S3 server for Cairn's tests and demo.
#[derive(Debug, Parser)]
#[command(name = "cairn-testenv", version)]
struct Cli {
    /// The environment's state directory (certificates, kubeconfig, data, logs).
    #[arg(long, global = true, env = "CAIRN_TESTENV_STATE")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the environment in the background and print how to reach it.
    Up(Parts),
    /// Stop the environment and remove its state.
    Down,
    /// Print the environment's KUBECONFIG, S3 endpoint and credentials.
    Env {
        /// `shell` prints export lines for `eval`.
        #[arg(short = 'o', long, value_enum, default_value_t = EnvFormat::Shell)]
        output: EnvFormat,
    },
    /// Show the cluster (version, nodes, namespaces) and the bucket's contents.
    Status {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = StatusFormat::Table)]
        output: StatusFormat,
    },
    /// Apply manifests (multi-document YAML) to the cluster, CRDs first, like `kubectl apply -f`.
    Apply {
        /// The manifest file; `-` reads standard input.
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Replace the word NAMESPACE in the manifests with this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Delete a namespace and wait until it is gone (the controller manager empties it first).
    DeleteNamespace {
        /// The namespace.
        name: String,
    },
    /// Wait until at least `count` pods of a namespace run (on a node), and list them.
    WaitRunning {
        /// The namespace.
        namespace: String,
        /// How many pods must run.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Print a pod's container log (through the API server), as `kubectl logs` does.
    Logs {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container (an init container too); the pod's only one when omitted.
        #[arg(long)]
        container: Option<String>,
    },
    /// Run the environment in the foreground until SIGTERM or SIGINT (what `up` starts).
    #[command(hide = true)]
    Serve(Parts),
}

/// What runs beside the control plane and the S3 server.
#[derive(Debug, Clone, Copy, clap::Args)]
struct Parts {
    /// Also a real node: containerd and a kubelet (pods that tolerate the taint cairn.dev/test-node run there,
    /// from the test images imported into it).
    #[arg(long)]
    node: bool,
    /// Also KWOK, for simulated nodes (the nodes annotated kwok.x-k8s.io/node=fake).
    #[arg(long)]
    kwok: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EnvFormat {
    Shell,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusFormat {
    Table,
    Json,
}

fn state_dir(cli: &Cli) -> PathBuf {
    cli.state.clone().unwrap_or_else(|| cache_dir().join("env"))
}

fn serve_pid(state: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(state.join("serve.pid")).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Written by `serve` once every part asked for runs.
const READY: &str = "ready";

fn up(state: &Path, parts: Parts) -> anyhow::Result<()> {
    if serve_pid(state).is_some() && state.join(READY).exists() {
        eprintln!("the environment in {} is already up", state.display());
        return print_env(state, EnvFormat::Shell);
    }
    if state.exists() {
        std::fs::remove_dir_all(state).with_context(|| format!("removing the old state in {}", state.display()))?;
    }
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let log_path = state.join("serve.log");
    let log = std::fs::File::create(&log_path)?;
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--state").arg(state).arg("serve").stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    if parts.node {
        command.arg("--node");
    }
    if parts.kwok {
        command.arg("--kwok");
    }
    detach(&mut command);
    let mut child = command.spawn().context("starting the environment supervisor")?;
    eprintln!("starting the test environment in {} ...", state.display());
    let started = Instant::now();
    while !state.join(READY).exists() {
        if let Some(status) = child.try_wait()? {
            bail!("the environment did not start ({status}): {}", log_tail(&log_path, 3));
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the environment was not up after 30 min; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let info = EnvInfo::read(state)?;
    eprintln!(
        "up in {:.1} s (the control plane started in {:.1} s)",
        started.elapsed().as_secs_f64(),
        info.start_seconds
    );
    print_env(state, EnvFormat::Shell)
}

/// Puts the supervisor in a session of its own, so it outlives `up` and the terminal's Ctrl-C.
#[allow(unsafe_code)]
fn detach(command: &mut Command) {
    // SAFETY: setsid is async-signal-safe and is the only call made between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn down(state: &Path) -> anyhow::Result<()> {
    match serve_pid(state) {
        Some(pid) => {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) only sends a signal; it touches no memory of this process.
            let sent = unsafe { libc::kill(pid, libc::SIGTERM) } == 0;
            if sent {
                let deadline = Instant::now() + Duration::from_secs(30);
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            eprintln!("stopped the environment in {}", state.display());
        }
        None => eprintln!("no environment is running in {}", state.display()),
    }
    if state.exists() {
        std::fs::remove_dir_all(state).with_context(|| format!("removing {}", state.display()))?;
    }
    Ok(())
}

fn serve(state: &Path, parts: Parts) -> anyhow::Result<()> {
    std::fs::write(state.join("serve.pid"), std::process::id().to_string())?;
    let mut environment = Environment::start(state)?;
    for (name, pid) in environment.processes() {
        eprintln!("{name} running, pid {pid}");
    }
    if parts.node {
        let node = environment.start_node()?;
        eprintln!("node {} running, runtime at {}", node.name, node.runtime_socket.display());
    }
    if parts.kwok {
        environment.start_kwok()?;
        eprintln!("kwok running");
    }
    std::fs::write(state.join(READY), b"")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        anyhow::Ok(())
    })?;
    eprintln!("stopping");
    drop(environment);
    Ok(())
}

fn print_env(state: &Path, format: EnvFormat) -> anyhow::Result<()> {
    let info =
        EnvInfo::read(state).with_context(|| format!("no environment is up in {}; run `up` first", state.display()))?;
    match format {
        EnvFormat::Json => println!("{}", serde_json::to_string_pretty(&info)?),
        EnvFormat::Shell => {
            let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
            for (key, value) in [
                ("KUBECONFIG", info.kubeconfig.display().to_string()),
                ("AWS_ACCESS_KEY_ID", info.s3_access_key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY", info.s3_secret_access_key.clone()),
                ("AWS_REGION", info.s3_region.clone()),
                ("CAIRN_S3_ENDPOINT", info.s3_endpoint.clone()),
                ("CAIRN_S3_BUCKET", info.s3_bucket.clone()),
                ("CAIRN_STORAGE", info.storage_url("")),
                ("CAIRN_TESTENV", info.state_dir.display().to_string()),
            ] {
                println!("export {key}={}", quote(&value));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct NodeRow {
    name: String,
    ready: bool,
    kubelet: String,
    simulated: bool,
}

#[derive(Debug, Serialize)]
struct PodRow {
    namespace: String,
    name: String,
    node: String,
    phase: String,
}

#[derive(Debug, Serialize)]
struct Status {
    kubernetes_version: String,
    apiserver_url: String,
    nodes: Vec<NodeRow>,
    pods: Vec<PodRow>,
    namespaces: Vec<String>,
    bucket: String,
    objects: Vec<String>,
}

async fn status(state: &Path, format: StatusFormat) -> anyhow::Result<()> {
    let info =
        EnvInfo::read(state).with_context(|| format!("no environment is up in {}; run `up` first", state.display()))?;
    let client = client_from(&info.kubeconfig).await?;
    let version = client.apiserver_version().await?;
    let names = |items: Vec<kube::api::ObjectMeta>| items.into_iter().filter_map(|m| m.name).collect::<Vec<_>>();
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?;
    let pods = Api::<Pod>::all(client.clone()).list(&ListParams::default()).await?;
    let namespaces = Api::<Namespace>::all(client).list_metadata(&ListParams::default()).await?;
    let store = info.open_bucket("")?;
    let objects: Vec<String> =
        store.inventory().await?.into_iter().map(|(key, size)| format!("{key} ({size} bytes)")).collect();
    let report = Status {
        kubernetes_version: version.git_version,
        apiserver_url: info.apiserver_url.clone(),
        nodes: nodes.items.into_iter().map(node_row).collect(),
        pods: pods.items.into_iter().map(pod_row).collect(),
        namespaces: names(namespaces.items.into_iter().map(|n| n.metadata).collect()),
        bucket: info.storage_url(""),
        objects,
    };
    match format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        StatusFormat::Table => {
            println!("Kubernetes {} at {}", report.kubernetes_version, report.apiserver_url);
            if report.nodes.is_empty() {
                println!("Nodes:      none");
            } else {
                println!("NODE                          STATUS     KUBELET     KIND");
                for n in &report.nodes {
                    let kind = if n.simulated { "simulated (KWOK)" } else { "real (containerd)" };
                    let ready = if n.ready { "Ready" } else { "NotReady" };
                    println!("{:<29} {ready:<10} {:<11} {kind}", n.name, n.kubelet);
                }
            }
            let placed: Vec<&PodRow> = report.pods.iter().filter(|p| !p.node.is_empty()).collect();
            if !placed.is_empty() {
                println!("POD                                           NODE                          PHASE");
                for p in placed {
                    println!("{:<45} {:<29} {}", format!("{}/{}", p.namespace, p.name), p.node, p.phase);
                }
            }
            println!("Namespaces: {}", report.namespaces.join(", "));
            println!("Bucket {}: {} objects", report.bucket, report.objects.len());
            for object in &report.objects {
                println!("  {object}");
            }
        }
    }
    Ok(())
}

fn node_row(node: Node) -> NodeRow {
    let status = node.status.unwrap_or_default();
    NodeRow {
        name: node.metadata.name.unwrap_or_default(),
        ready: status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True"),
        kubelet: status.node_info.map(|i| i.kubelet_version).unwrap_or_default(),
        simulated: node.metadata.annotations.unwrap_or_default().contains_key(cairn_tests::kwok::KWOK_ANNOTATION),
    }
}

fn pod_row(pod: Pod) -> PodRow {
    PodRow {
        namespace: pod.metadata.namespace.unwrap_or_default(),
        name: pod.metadata.name.unwrap_or_default(),
        node: pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
        phase: pod.status.and_then(|s| s.phase).unwrap_or_default(),
    }
}

async fn apply(state: &Path, file: &Path, namespace: Option<&str>) -> anyhow::Result<()> {
    let info =
        EnvInfo::read(state).with_context(|| format!("no environment is up in {}; run `up` first", state.display()))?;
    let mut yaml = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    if let Some(namespace) = namespace {
        yaml = yaml.replace("NAMESPACE", namespace);
    }
    let client = client_from(&info.kubeconfig).await?;
    for applied in apply_manifests(&client, &yaml).await? {
        let name = match &applied.namespace {
            Some(ns) => format!("{ns}/{}", applied.name),
            None => applied.name.clone(),
        };
        println!("{} {name} applied", applied.kind);
    }
    Ok(())
}

async fn delete_namespace(state: &Path, name: &str) -> anyhow::Result<()> {
    let info =
        EnvInfo::read(state).with_context(|| format!("no environment is up in {}; run `up` first", state.display()))?;
    let namespaces: Api<Namespace> = Api::all(client_from(&info.kubeconfig).await?);
    namespaces.delete(name, &Default::default()).await.with_context(|| format!("deleting namespace {name}"))?;
    let started = Instant::now();
    while namespaces.get_opt(name).await?.is_some() {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("namespace {name} was not gone after 2 min");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("namespace {name} deleted in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn logs(state: &Path, namespace: &str, pod: &str, container: Option<String>) -> anyhow::Result<()> {
    let info =
        EnvInfo::read(state).with_context(|| format!("no environment is up in {}; run `up` first", state.display()))?;
    let pods: Api<Pod> = Api::namespaced(client_from(&info.kubeconfig).await?, namespace);
    let params = kube::api::LogParams { container, ..Default::default() };
    print!("{}", pods.logs(pod, &params).await.with_context(|| format!("reading the log of {namespace}/{pod}"))?);
    Ok(())
}

async fn wait_running(state: &Path, namespace: &str, count: usize, timeout: u64) -> anyhow::Result<()> {
    let info =
        EnvInfo::read(state).with_context(|| format!("no environment is up in {}; run `up` first", state.display()))?;
    let pods: Api<Pod> = Api::namespaced(client_from(&info.kubeconfig).await?, namespace);
    let started = Instant::now();
    loop {
        let running: Vec<PodRow> = pods
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(pod_row)
            .filter(|p| p.phase == "Running")
            .collect();
        if running.len() >= count {
            for pod in running {
                println!("{}/{} Running on {}", pod.namespace, pod.name, pod.node);
            }
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            bail!("{} of {count} pods of namespace {namespace} run after {timeout} s", running.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs an async command on a runtime of its own (`serve` must not run inside one: it starts processes and
/// its readiness checks build their own).
fn block_on(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(command)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let state = state_dir(&cli);
    let result = match cli.command {
        Cmd::Up(parts) => up(&state, parts),
        Cmd::Down => down(&state),
        Cmd::Env { output } => print_env(&state, output),
        Cmd::Status { output } => block_on(status(&state, output)),
        Cmd::Serve(parts) => serve(&state, parts),
        Cmd::DeleteNamespace { name } => block_on(delete_namespace(&state, &name)),
        Cmd::Apply { file, namespace } => block_on(apply(&state, &file, namespace.as_deref())),
        Cmd::WaitRunning { namespace, count, timeout } => block_on(wait_running(&state, &namespace, count, timeout)),
        Cmd::Logs { namespace, pod, container } => block_on(logs(&state, &namespace, &pod, container)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cairn-testenv: {error:#}");
            ExitCode::FAILURE
        }
    }
}
