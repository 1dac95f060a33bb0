//! Velero beside Cairn: the same objects backed up and restored by `cairn` (standalone) and by a Velero
//! server run outside the cluster with the AWS object-store plugin, against the same API server and S3
//! bucket, in one run. Figures: wall time and peak resident memory (Cairn's process; Velero's server plus
//! its plugin processes), printed as a table; nothing is asserted.
//!
//! Per size N: load N objects into 50 new namespaces; (a) `cairn backup create` of those namespaces;
//! (b) a Velero Backup of them; delete the namespaces; (c) `cairn restore create`; delete them again;
//! (d) a Velero Restore. A Velero failure prints its status and log tail and the run goes on.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use cairn_tests::{
    TestEnv,
    apply::apply_manifests,
    measure::run_measured,
    process::{Component, accepts_connections, free_port, log_tail},
};
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{Namespace, Secret},
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, GroupVersionKind, ObjectMeta, PostParams},
    discovery::ApiResource,
    runtime::wait::{await_condition, conditions::is_deleted},
};
use serde_json::json;

/// The BackupStorageLocation every Velero Backup of the benchmark goes to (also the server's default).
const LOCATION: &str = "default";
/// The Secret (and its key) holding the S3 keys in the AWS credentials-file format the plugin reads.
const CREDENTIALS: (&str, &str) = ("cloud-credentials", "cloud");
/// How long the server may take to find its location Available.
const LOCATION_TIMEOUT: Duration = Duration::from_secs(120);
/// The port Velero's controller manager always listens on, on every interface: controller-runtime's default
/// metrics address, which no flag of `velero server` changes. So one Velero server runs on a machine at a time.
const MANAGER_METRICS_PORT: u16 = 8080;
/// How often the memory of Velero's process tree is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long one Velero Backup or Restore may take before it is reported as not finished.
const RUN_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long deleting the benchmark's namespaces may take.
const DELETE_TIMEOUT: Duration = Duration::from_secs(1200);

/// One measured run: its wall time, peak resident memory and the objects it handled.
#[derive(Debug, Clone, Copy)]
struct Measured {
    seconds: f64,
    peak_mib: f64,
    objects: u64,
}

/// The figures of one size, for the table.
#[derive(Debug)]
struct SizeFigures {
    size: usize,
    cairn_backup: Measured,
    velero_backup: Option<Measured>,
    cairn_restore: Measured,
    velero_restore: Option<Measured>,
}

/// Runs the benchmark for each of `sizes` and prints the table.
pub(crate) async fn velero_bench(
    sizes: Vec<usize>,
    cairn: &Path,
    velero: &Path,
    plugin_dir: &Path,
) -> anyhow::Result<()> {
    for (what, path) in [("velero", velero), ("the plugin directory", plugin_dir)] {
        if !path.exists() {
            bail!("{what} {} not found: build it with `bash tests/env/build-velero.sh`", path.display());
        }
    }
    let (env, client, first_namespaces) = super::setup(cairn, &format!("vb{}", sizes.first().copied().unwrap_or(0)))
        .await
        .context("starting the test environment")?;
    println!(
        "Velero beside Cairn: Kubernetes {}, S3 cairn-s3 (s3s-fs), {} cores, Velero {}",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?,
        velero_version(velero)
    );
    let velero_prefix = env.bucket_prefix("velero");
    let server = match VeleroServer::install_and_start(&client, &env, velero, plugin_dir, &velero_prefix).await {
        Ok(server) => Some(server),
        Err(error) => {
            eprintln!("Velero could not be started, measuring Cairn alone: {error:#}");
            None
        }
    };
    if let Some(server) = &server {
        let (kib, processes) = tree_rss_kib(server.component.pid());
        eprintln!("velero server idle: {:.1} MiB (server and plugins: {processes} processes)", kib as f64 / 1024.0);
    }
    let cairn_prefix = env.bucket_prefix("cairn-beside-velero");
    let mut figures = Vec::new();
    let mut namespaces = Some(first_namespaces);
    for size in sizes {
        let namespaces = match namespaces.take() {
            Some(namespaces) => namespaces,
            None => super::setup(cairn, &format!("vb{size}")).await?.2,
        };
        let run = SizeRun { env: &env, client: &client, cairn, cairn_prefix: &cairn_prefix, size, namespaces };
        figures.push(run.measure(server.as_ref()).await?);
    }
    print_table(&figures);
    Ok(())
}

/// `velero version --client-only`'s version line, or `?`.
fn velero_version(velero: &Path) -> String {
    let output = std::process::Command::new(velero).args(["version", "--client-only"]).output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines().find_map(|l| l.trim().strip_prefix("Version:")).map_or("?".into(), |v| v.trim().to_owned())
}

/// One size's run: its objects in its own namespaces.
struct SizeRun<'a> {
    env: &'a TestEnv,
    client: &'a Client,
    cairn: &'a Path,
    cairn_prefix: &'a str,
    size: usize,
    namespaces: Vec<String>,
}

impl SizeRun<'_> {
    /// Loads the objects, measures the four runs in order and removes the namespaces again.
    async fn measure(&self, server: Option<&VeleroServer>) -> anyhow::Result<SizeFigures> {
        let size = self.size;
        let started = Instant::now();
        super::load(self.client, &self.namespaces, 0, size, size).await?;
        // Let the controllers settle (ReplicaSets and Pods of the Deployments), as the backup benchmark does.
        tokio::time::sleep(Duration::from_secs(5)).await;
        eprintln!("N={size}: loaded {size} objects in {:.1} s", started.elapsed().as_secs_f64());

        let name = format!("beside-velero-{size}");
        let cairn_backup = self.cairn_backup(&name)?;
        eprintln!("N={size}: cairn backup {}", describe(&cairn_backup));
        let velero_backup = match server {
            Some(server) => server.run(self.client, &VeleroRun::backup(&name, &self.namespaces), size).await,
            None => None,
        };

        self.delete_namespaces().await?;
        let cairn_restore = self.cairn_restore(&name)?;
        eprintln!("N={size}: cairn restore {}", describe(&cairn_restore));
        let velero_restore = match (server, velero_backup) {
            (Some(server), Some(_)) => {
                self.delete_namespaces().await?;
                server.run(self.client, &VeleroRun::restore(&name), size).await
            }
            _ => None,
        };
        self.delete_namespaces().await?;
        Ok(SizeFigures { size, cairn_backup, velero_backup, cairn_restore, velero_restore })
    }

    /// `cairn backup create NAME --include-namespaces ...` standalone, measured.
    fn cairn_backup(&self, name: &str) -> anyhow::Result<Measured> {
        let included = self.namespaces.join(",");
        let args = ["backup", "create", name, "--include-namespaces", &included, "-o", "json"];
        let command = super::cairn_command(self.cairn, self.env, self.cairn_prefix, &args);
        let (wall, rss_kib, _, output) = run_measured(command)?;
        if !output.status.success() {
            bail!("cairn backup create {name} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("reading the report of cairn backup create {name}"))?;
        let objects = report["backup"]["status"]["progress"]["itemsBackedUp"].as_u64().unwrap_or(0);
        Ok(Measured { seconds: wall.as_secs_f64(), peak_mib: rss_kib as f64 / 1024.0, objects })
    }

    /// `cairn restore create NAME --from-backup NAME` standalone into the deleted namespaces, measured.
    fn cairn_restore(&self, name: &str) -> anyhow::Result<Measured> {
        let args = ["restore", "create", name, "--from-backup", name, "-o", "json"];
        let command = super::cairn_command(self.cairn, self.env, self.cairn_prefix, &args);
        let (wall, rss_kib, _, output) = run_measured(command)?;
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
            format!("cairn restore create {name} failed: {}", String::from_utf8_lossy(&output.stderr))
        })?;
        if let Some(errors) = report["errors"].as_array().filter(|e| !e.is_empty()) {
            eprintln!("  cairn restore {name} had {} errors, the first: {}", errors.len(), errors[0]);
        }
        let objects = report["restore"]["status"]["itemsRestored"].as_u64().unwrap_or(0);
        Ok(Measured { seconds: wall.as_secs_f64(), peak_mib: rss_kib as f64 / 1024.0, objects })
    }

    /// Deletes the size's namespaces and waits until they are gone (the controller manager empties them).
    async fn delete_namespaces(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut deleting = Vec::new();
        for name in &self.namespaces {
            if let Some(namespace) = api.get_opt(name).await.with_context(|| format!("reading namespace {name}"))? {
                api.delete(name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting namespace {name}"))?;
                deleting.push((name, namespace.uid().unwrap_or_default()));
            }
        }
        for (name, uid) in deleting {
            tokio::time::timeout(DELETE_TIMEOUT, await_condition(api.clone(), name, is_deleted(&uid)))
                .await
                .with_context(|| format!("namespace {name} was still terminating after {DELETE_TIMEOUT:?}"))?
                .with_context(|| format!("watching namespace {name} being deleted"))?;
        }
        eprintln!("N={}: namespaces deleted in {:.1} s", self.size, started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// `12.3 s, 45.6 MiB peak, 5000 objects`.
fn describe(measured: &Measured) -> String {
    format!("{:.2} s, {:.1} MiB peak, {} objects", measured.seconds, measured.peak_mib, measured.objects)
}

/// A Velero Backup or Restore to create and wait for.
#[derive(Debug)]
struct VeleroRun {
    /// `Backup` or `Restore`.
    kind: &'static str,
    /// Its resource (plural).
    plural: &'static str,
    name: String,
    spec: serde_json::Value,
    /// The status field counting handled items.
    counter: &'static str,
}

impl VeleroRun {
    /// A Backup of `namespaces` to the benchmark's location, without volume snapshots.
    fn backup(name: &str, namespaces: &[String]) -> VeleroRun {
        let spec = json!({
            "includedNamespaces": namespaces,
            "storageLocation": LOCATION,
            "snapshotVolumes": false,
            "ttl": "720h0m0s",
        });
        VeleroRun { kind: "Backup", plural: "backups", name: name.into(), spec, counter: "itemsBackedUp" }
    }

    /// A Restore of everything in the Backup `name`.
    fn restore(name: &str) -> VeleroRun {
        let spec = json!({ "backupName": name });
        VeleroRun { kind: "Restore", plural: "restores", name: name.into(), spec, counter: "itemsRestored" }
    }

    fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", self.kind), self.plural)
    }
}

/// True once a Backup's or Restore's phase is final.
fn finished_phase(phase: &str) -> bool {
    matches!(phase, "Completed" | "PartiallyFailed" | "Failed" | "FailedValidation")
}

fn phase_of(object: &DynamicObject) -> &str {
    object.data["status"]["phase"].as_str().unwrap_or("")
}

/// Seconds between two RFC 3339 timestamps of a status (whole seconds, as Velero writes them).
fn seconds_between(status: &serde_json::Value, from: &str, to: &str) -> Option<i64> {
    let at = |field: &str| status[field].as_str()?.parse::<jiff::Timestamp>().ok();
    Some(at(to)?.as_second() - at(from)?.as_second())
}

/// The Velero server, run outside the cluster against the environment.
struct VeleroServer {
    /// The server's process (killed when dropped).
    component: Component,
    log: PathBuf,
    namespace: String,
}

impl VeleroServer {
    /// Installs Velero's CRDs, a namespace with the S3 credentials and a BackupStorageLocation on the
    /// environment's bucket under `prefix`, starts `velero server` and waits until the location is
    /// Available.
    async fn install_and_start(
        client: &Client,
        env: &TestEnv,
        velero: &Path,
        plugin_dir: &Path,
        prefix: &str,
    ) -> anyhow::Result<VeleroServer> {
        if std::net::TcpListener::bind(("0.0.0.0", MANAGER_METRICS_PORT)).is_err() {
            bail!(
                "port {MANAGER_METRICS_PORT} is taken, and Velero's controller manager always listens on it (no flag \
                 of velero server changes it): is another Velero server running? `ss -ltnp | grep :{MANAGER_METRICS_PORT}` \
                 names the process; stop it and run again"
            );
        }
        let home = env.info().state_dir.join("velero-home");
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        install_crds(client, velero, &home).await?;
        let namespace = env.namespace("velero").await;
        create_location(client, env, &namespace, prefix).await?;
        create_deployment_stand_in(client, &namespace, velero).await?;
        let port = free_port()?;
        let log = env.info().state_dir.join("logs").join(format!("velero-{namespace}.log"));
        let args: Vec<String> = [
            "server",
            "--kubeconfig",
            &env.info().kubeconfig.display().to_string(),
            "--namespace",
            &namespace,
            "--plugin-dir",
            &plugin_dir.display().to_string(),
            "--features=",
            "--metrics-address",
            &format!("127.0.0.1:{port}"),
            "--profiler-address=",
            "--default-backup-storage-location",
            LOCATION,
            "--log-level",
            "info",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        // TMPDIR: where the server writes the credentials file it hands the plugin; HOME: no user config.
        let home_text = home.display().to_string();
        let environment = [("TMPDIR", home_text.as_str()), ("HOME", home_text.as_str())];
        let mut component = Component::start_with_env("velero", velero, &args, &environment, log.clone(), vec![port])?;
        component.wait_until(Duration::from_secs(60), || accepts_connections(port))?;
        let mut server = VeleroServer { component, log, namespace };
        server.wait_location_available(client).await?;
        Ok(server)
    }

    /// Waits until the location is Available, failing at once when the server exits.
    async fn wait_location_available(&mut self, client: &Client) -> anyhow::Result<()> {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &self.namespace, &location_resource());
        let deadline = Instant::now() + LOCATION_TIMEOUT;
        loop {
            self.component.check_running().context("velero server stopped before its location was Available")?;
            let location = api.get_opt(LOCATION).await.context("reading Velero's BackupStorageLocation")?;
            let status = location.map(|o| o.data["status"].clone()).unwrap_or_default();
            if status["phase"] == "Available" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "Velero's BackupStorageLocation {LOCATION} was not Available within {LOCATION_TIMEOUT:?} \
                     (status {status}); velero server log {}, last lines:\n{}",
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Creates `run`, waits until its phase is final while sampling the memory of the server and its plugins,
    /// and prints its per-phase timing. None, with the reason printed, when it did not complete.
    async fn run(&self, client: &Client, run: &VeleroRun, size: usize) -> Option<Measured> {
        match self.try_run(client, run).await {
            Ok((measured, status)) => {
                let ran = seconds_between(&status, "startTimestamp", "completionTimestamp");
                eprintln!(
                    "N={size}: velero {} {} (by its status: {} s from start to completion, so about {} s \
                     before it started and after it completed; warnings {}, errors {})",
                    run.kind.to_lowercase(),
                    describe(&measured),
                    ran.map_or("?".into(), |s| s.to_string()),
                    ran.map_or("?".into(), |s| format!("{:.0}", (measured.seconds - s as f64).max(0.0))),
                    status["warnings"].as_u64().unwrap_or(0),
                    status["errors"].as_u64().unwrap_or(0),
                );
                Some(measured)
            }
            Err(error) => {
                eprintln!(
                    "N={size}: velero {} {} failed: {error:#}\nvelero server log {}, last lines:\n{}",
                    run.kind.to_lowercase(),
                    run.name,
                    self.log.display(),
                    log_tail(&self.log, 15)
                );
                None
            }
        }
    }

    async fn try_run(&self, client: &Client, run: &VeleroRun) -> anyhow::Result<(Measured, serde_json::Value)> {
        let resource = run.resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &self.namespace, &resource);
        let object = DynamicObject::new(&run.name, &resource).within(&self.namespace).data(json!({ "spec": run.spec }));
        let sampler = TreeSampler::start(self.component.pid());
        let started = Instant::now();
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating the Velero {} {}", run.kind, run.name))?;
        let done = |o: Option<&DynamicObject>| o.is_some_and(|o| finished_phase(phase_of(o)));
        let finished = tokio::time::timeout(RUN_TIMEOUT, await_condition(api.clone(), &run.name, done)).await;
        let seconds = started.elapsed().as_secs_f64();
        let (peak_kib, processes) = sampler.finish();
        let finished = finished
            .with_context(|| format!("the Velero {} {} did not finish within {RUN_TIMEOUT:?}", run.kind, run.name))?
            .with_context(|| format!("watching the Velero {} {}", run.kind, run.name))?
            .with_context(|| format!("the Velero {} {} was deleted", run.kind, run.name))?;
        let status = finished.data["status"].clone();
        let phase = phase_of(&finished);
        if !matches!(phase, "Completed" | "PartiallyFailed") {
            bail!("the Velero {} {} ended {phase}: status {status}", run.kind, run.name);
        }
        if phase == "PartiallyFailed" {
            eprintln!("  the Velero {} {} ended PartiallyFailed: status {status}", run.kind, run.name);
        }
        let objects = status["progress"][run.counter].as_u64().unwrap_or(0);
        eprintln!("  velero's process tree had up to {processes} processes (server and plugins) during {}", run.name);
        Ok((Measured { seconds, peak_mib: peak_kib as f64 / 1024.0, objects }, status))
    }
}

impl Drop for VeleroServer {
    /// Stops the plugin processes the server started (they would outlive it), then the server (its
    /// `Component` kills it when dropped).
    fn drop(&mut self) {
        for pid in tree(self.component.pid()).into_iter().filter(|p| *p != self.component.pid()) {
            let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

/// Applies the CRDs that `velero install --crds-only --dry-run -o yaml` prints (a List).
async fn install_crds(client: &Client, velero: &Path, home: &Path) -> anyhow::Result<()> {
    let output = std::process::Command::new(velero)
        .args(["install", "--crds-only", "--dry-run", "-o", "yaml"])
        .env("HOME", home)
        .output()
        .with_context(|| format!("running {} install --crds-only", velero.display()))?;
    if !output.status.success() {
        bail!("velero install --crds-only --dry-run failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let list: serde_json::Value =
        serde_yaml_ng::from_slice(&output.stdout).context("reading the CRD list velero install printed")?;
    let documents: Vec<String> = list["items"]
        .as_array()
        .context("velero install printed no List of CRDs")?
        .iter()
        .map(|item| item.to_string())
        .collect();
    apply_manifests(client, &documents.join("\n---\n")).await.context("applying Velero's CRDs")?;
    Ok(())
}

/// The credentials Secret and the BackupStorageLocation (provider aws) on the environment's bucket.
async fn create_location(client: &Client, env: &TestEnv, namespace: &str, prefix: &str) -> anyhow::Result<()> {
    let info = env.info();
    let file = format!(
        "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
        info.s3_access_key_id, info.s3_secret_access_key
    );
    let secret = Secret {
        metadata: ObjectMeta { name: Some(CREDENTIALS.0.into()), ..Default::default() },
        data: Some([(CREDENTIALS.1.to_owned(), ByteString(file.into_bytes()))].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .with_context(|| format!("creating the Secret {} in {namespace}", CREDENTIALS.0))?;
    let resource = location_resource();
    let location = DynamicObject::new(LOCATION, &resource).within(namespace).data(json!({
        "spec": {
            "provider": "aws",
            "default": true,
            "objectStorage": { "bucket": info.s3_bucket, "prefix": prefix },
            "credential": { "name": CREDENTIALS.0, "key": CREDENTIALS.1 },
            "config": {
                "region": info.s3_region,
                "s3Url": info.s3_endpoint,
                "s3ForcePathStyle": "true",
                // The plugin's documented setting for S3-compatible servers: no checksum headers, as Cairn's
                // uploads send none.
                "checksumAlgorithm": "",
            },
        }
    }));
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .create(&PostParams::default(), &location)
        .await
        .with_context(|| format!("creating the BackupStorageLocation {LOCATION} in {namespace}"))?;
    Ok(())
}

/// A Deployment `velero` scaled to zero, standing in for the one `velero install` creates: Velero's restore
/// reads it for its own image (the pod volume restore action fails every restore without it), and the
/// server runs here as a plain process instead.
async fn create_deployment_stand_in(client: &Client, namespace: &str, velero: &Path) -> anyhow::Result<()> {
    let labels = json!({ "component": "velero", "deploy": "velero" });
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "velero", "labels": labels },
        "spec": {
            "replicas": 0,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [{ "name": "velero", "image": format!("velero/velero:{}", velero_version(velero)) }] },
            },
        },
    }))?;
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &deployment)
        .await
        .with_context(|| format!("creating the stand-in Deployment velero in {namespace}"))?;
    Ok(())
}

/// Velero's BackupStorageLocation resource.
fn location_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("velero.io", "v1", "BackupStorageLocation");
    ApiResource::from_gvk_with_plural(&gvk, "backupstoragelocations")
}

/// `pid` and all its descendants now, from the parent ids in /proc/*/stat.
fn tree(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let parent = stat.rfind(')').and_then(|close| stat[close + 2..].split(' ').nth(1)?.parse::<u32>().ok());
        if let Some(parent) = parent {
            parents.push((child, parent));
        }
    }
    let mut members = vec![pid];
    let mut next = 0;
    while next < members.len() {
        let parent = members[next];
        members.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        next += 1;
    }
    members
}

/// The summed VmRSS of `pid` and its descendants in KiB, and how many processes that is.
fn tree_rss_kib(pid: u32) -> (u64, usize) {
    let members = tree(pid);
    let kib = members
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum();
    (kib, members.len())
}

/// Samples the summed resident memory of a process tree every [`SAMPLE_EVERY`] on a thread of its own.
struct TreeSampler {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, usize)>,
}

impl TreeSampler {
    fn start(pid: u32) -> TreeSampler {
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut peak, mut processes) = (0, 0);
                loop {
                    let (kib, members) = tree_rss_kib(pid);
                    (peak, processes) = (peak.max(kib), processes.max(members));
                    if done.load(Ordering::Relaxed) {
                        return (peak, processes);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        TreeSampler { done, thread }
    }

    /// Stops sampling; the highest sum seen in KiB, and the most processes the tree had.
    fn finish(self) -> (u64, usize) {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

/// Prints the backup and restore tables; `-` where Velero did not complete.
fn print_table(figures: &[SizeFigures]) {
    for (title, pick) in [
        ("backup", (|f: &SizeFigures| (f.cairn_backup, f.velero_backup)) as fn(&SizeFigures) -> _),
        ("restore", |f: &SizeFigures| (f.cairn_restore, f.velero_restore)),
    ] {
        println!("\n{title} (objects: cairn/velero; velero memory: server + plugin processes)");
        println!(
            "{:>7} {:>13} {:>10} {:>10} {:>13} {:>10} {:>10}",
            "N", "objects", "cairn s", "velero s", "velero/cairn", "cairn MiB", "velero MiB"
        );
        for f in figures {
            let (cairn, velero): (Measured, Option<Measured>) = pick(f);
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            println!(
                "{:>7} {:>13} {:>10.2} {:>10} {:>13} {:>10.1} {:>10}",
                f.size,
                format!("{}/{}", cairn.objects, or_dash(velero.map(|v| v.objects.to_string()))),
                cairn.seconds,
                or_dash(velero.map(|v| format!("{:.2}", v.seconds))),
                or_dash(velero.map(|v| format!("{:.2}x", v.seconds / cairn.seconds))),
                cairn.peak_mib,
                or_dash(velero.map(|v| format!("{:.1}", v.peak_mib))),
            );
        }
    }
}
