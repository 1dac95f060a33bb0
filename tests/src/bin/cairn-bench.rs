//! `cairn-bench`: measures Cairn against a baseline taken in the same run, on the local test environment.
//! It prints figures; it asserts nothing (see docs/benchmarks.md).
//!
//! `cairn-bench backup --sizes 5000,20000 --cairn target/release/cairn` loads objects (ConfigMaps and Secrets
//! of realistic sizes plus Deployments and Services, across 50 namespaces) and for each size measures
//! (a) the floor: a paged LIST of every resource type with the same client, discarding the results, once
//! one type at a time and once with the backup's concurrency; (b) `cairn backup create` of everything, as a
//! separate process whose peak RSS is read from the kernel.
//!
//! `cairn-bench server --objects 20000 --server target/release/backup-server` backs the same objects up twice:
//! with `cairn backup create` standalone (the baseline) and as a Backup object run by `backup-server`, and
//! prints both times and the server's resident memory idle, at its peak, and after the backup. With
//! `--backups N` the same server process then runs N more backups one after the other, printing after each
//! its time, RSS, peak, open file descriptors, threads and the API server's requests (its own
//! `apiserver_request_total`, every client, with the idle rate measured before), and at the end the
//! least-squares slope of RSS over the last 150 backups (the last 3/4 below 200) with its verdict.
//!
//! `cairn-bench sync --backups 10000 --period 2s` fills a bucket prefix with that many stored backups (one
//! real backup's record copied under other names), starts a fresh `backup-server` with that
//! `--backup-sync-period` whose location reaches the S3 server through a counting proxy, and prints the time
//! until every backup is a Backup object, the server's memory, the bucket and API server requests per sync
//! period in steady state, and the cost of the periods that pick up one new backup.
//!
//! `cairn-bench drain --nodes 20 --pods-per-node 30 --concurrency 1,4,10` drains simulated nodes with
//! `kubectl drain` one after the other (the baseline) and with `cairn node drain` at each concurrency.
//!
//! `cairn-bench images --nodes 500 --images 200` inventories nodes that report that many images each with
//! `cairn image list`, against the floor of listing the same nodes and pods.

#[path = "cairn-bench/drain.rs"]
mod drain;
#[path = "cairn-bench/images.rs"]
mod images;
#[path = "cairn-bench/requests.rs"]
mod requests;
#[path = "cairn-bench/server.rs"]
mod server;
#[path = "cairn-bench/sync.rs"]
mod sync;
#[path = "cairn-bench/velero.rs"]
mod velero;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use cairn_kube::discovery::{Discovery, ResourceType};
use cairn_tests::{TestEnv, environment::random_hex, measure::run_measured};
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentSpec},
    core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec, Secret, Service, ServicePort, ServiceSpec},
};
use k8s_openapi::{ByteString, apimachinery::pkg::apis::meta::v1::LabelSelector};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

const NAMESPACES: usize = 50;
const DEPLOYMENTS: usize = 250;
const SERVICES: usize = 250;
/// List tasks the backup runs at once (backup-core's CONCURRENT_LISTS).
const BACKUP_CONCURRENCY: usize = 4;
const CREATE_CONCURRENCY: usize = 32;

#[derive(Debug, Parser)]
#[command(name = "cairn-bench")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Backup throughput and memory against the LIST floor.
    Backup {
        /// Object counts to measure, ascending (objects are added between sizes).
        #[arg(long, value_delimiter = ',', default_value = "5000,20000")]
        sizes: Vec<usize>,
        /// The cairn binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
    },
    /// A backup run by backup-server against the same backup run standalone by cairn; the server's memory.
    Server {
        /// Objects to load and back up.
        #[arg(long, default_value_t = 20000)]
        objects: usize,
        /// After the comparison, backups the same server process runs in a row, each measured (memory, open
        /// files, threads, API requests), with the trend of its memory at the end.
        #[arg(long, default_value_t = 1)]
        backups: usize,
        /// The cairn binary (the baseline).
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
        /// The backup-server binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/backup-server")]
        server: PathBuf,
    },
    /// Bucket sync at scale: a fresh backup-server showing a bucket's stored backups as objects, and what each
    /// sync period costs the bucket and the API server once nothing changes, and when one backup appears.
    Sync {
        /// Stored backups to put in the bucket.
        #[arg(long, default_value_t = 10000)]
        backups: usize,
        /// The server's --backup-sync-period.
        #[arg(long, default_value = "2s")]
        period: String,
        /// The cairn binary (it writes the one real backup the others are copied from).
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
        /// The backup-server binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/backup-server")]
        server: PathBuf,
    },
    /// Draining simulated nodes: `cairn node drain` at several concurrencies against `kubectl drain` run one
    /// node after the other.
    Drain {
        /// Nodes to drain per variant.
        #[arg(long, default_value_t = 20)]
        nodes: usize,
        /// Pods on each drained node.
        #[arg(long, default_value_t = 30)]
        pods_per_node: usize,
        /// The concurrencies to measure cairn at.
        #[arg(long, value_delimiter = ',', default_value = "1,4,10")]
        concurrency: Vec<usize>,
        /// The cairn binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
        /// kubectl (tests/bench.sh drain builds it into the cache); default: the cached one.
        #[arg(long)]
        kubectl: Option<PathBuf>,
    },
    /// The image inventory of many nodes with many images against listing them.
    Images {
        /// Nodes to create.
        #[arg(long, default_value_t = 500)]
        nodes: usize,
        /// Images each node reports.
        #[arg(long, default_value_t = 200)]
        images: usize,
        /// The cairn binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
    },
    /// Velero beside Cairn: backups and restores of the same objects by both, time and peak memory.
    Velero {
        /// Object counts to measure (each in new namespaces).
        #[arg(long, value_delimiter = ',', default_value = "5000,20000")]
        sizes: Vec<usize>,
        /// The cairn binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
        /// The velero binary (tests/env/build-velero.sh prints its path first).
        #[arg(long)]
        velero: PathBuf,
        /// The directory holding the AWS plugin (build-velero.sh prints it second).
        #[arg(long)]
        plugin_dir: PathBuf,
    },
    /// Restore throughput and memory against objects created one by one with one client.
    Restore {
        /// Objects to load, back up and restore.
        #[arg(long, default_value_t = 20000)]
        objects: usize,
        /// The cairn binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
    },
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), app.to_owned())])
}

fn meta(name: String, app: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name), labels: Some(labels(app)), ..Default::default() }
}

/// Creates objects number `from..to` of the mix, `CREATE_CONCURRENCY` at a time, and prints how long that
/// took on a line of its own; object `i` lives in namespace `i % 50`.
async fn load(client: &Client, namespaces: &[String], from: usize, to: usize, total: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    create_objects(client, namespaces, from, to, total).await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "  (loaded {} objects in {seconds:.1} s: {:.0} creates/s, {CREATE_CONCURRENCY} in flight)",
        to.saturating_sub(from),
        to.saturating_sub(from) as f64 / seconds.max(0.001)
    );
    Ok(())
}

async fn create_objects(
    client: &Client,
    namespaces: &[String],
    from: usize,
    to: usize,
    total: usize,
) -> anyhow::Result<()> {
    let fixed = DEPLOYMENTS + SERVICES;
    stream::iter(from..to)
        .map(|i| {
            let client = client.clone();
            let ns = namespaces[i % NAMESPACES].clone();
            async move {
                let pp = PostParams::default();
                // The first objects of the mix are the Deployments and Services; the rest ConfigMaps (60%,
                // 1-4 KiB) and Secrets (40%, 0.5-2 KiB).
                if i < DEPLOYMENTS && total >= fixed {
                    let app = format!("app-{i}");
                    let deployment = Deployment {
                        metadata: meta(app.clone(), &app),
                        spec: DeploymentSpec {
                            replicas: Some(1),
                            selector: LabelSelector { match_labels: Some(labels(&app)), ..Default::default() },
                            template: PodTemplateSpec {
                                metadata: Some(ObjectMeta { labels: Some(labels(&app)), ..Default::default() }),
                                spec: Some(PodSpec {
                                    containers: vec![Container {
                                        name: "app".into(),
                                        image: Some("registry.example/app:1.0".into()),
                                        ..Default::default()
                                    }],
                                    ..Default::default()
                                }),
                            },
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    Api::<Deployment>::namespaced(client, &ns).create(&pp, &deployment).await.map(drop)
                } else if i < fixed && total >= fixed {
                    let app = format!("app-{}", i - DEPLOYMENTS);
                    let service = Service {
                        metadata: meta(app.clone(), &app),
                        spec: Some(ServiceSpec {
                            selector: Some(labels(&app)),
                            ports: Some(vec![ServicePort { port: 80, ..Default::default() }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    Api::<Service>::namespaced(client, &ns).create(&pp, &service).await.map(drop)
                } else if i % 5 < 3 {
                    let size = 1024 + (i * 7919) % 3072;
                    let data = BTreeMap::from([("config.json".to_owned(), random_hex(size / 2))]);
                    let configmap = ConfigMap {
                        metadata: meta(format!("config-{i}"), "bench"),
                        data: Some(data),
                        ..Default::default()
                    };
                    Api::<ConfigMap>::namespaced(client, &ns).create(&pp, &configmap).await.map(drop)
                } else {
                    let size = 512 + (i * 7919) % 1536;
                    let data = BTreeMap::from([("token".to_owned(), ByteString(random_hex(size / 2).into_bytes()))]);
                    let secret = Secret {
                        metadata: meta(format!("secret-{i}"), "bench"),
                        data: Some(data),
                        ..Default::default()
                    };
                    Api::<Secret>::namespaced(client, &ns).create(&pp, &secret).await.map(drop)
                }
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .context("loading objects")?;
    Ok(())
}

/// Paged LIST of every type, results discarded; returns the objects seen.
async fn list_everything(client: &Client, types: &[ResourceType], concurrency: usize) -> anyhow::Result<u64> {
    let counts: Vec<u64> = stream::iter(types)
        .map(|t| async move {
            let mut token: Option<String> = None;
            let mut seen = 0u64;
            loop {
                let mut url = format!("{}?limit=500", t.list_path(None));
                if let Some(token) = &token {
                    url.push_str(&format!(
                        "&continue={}",
                        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
                    ));
                }
                let body = client.request_text(http::Request::get(url).body(Vec::new())?).await?;
                let page: serde_json::Value = serde_json::from_str(&body)?;
                seen += page["items"].as_array().map_or(0, |i| i.len() as u64);
                match page["metadata"]["continue"].as_str().filter(|t| !t.is_empty()) {
                    Some(next) => token = Some(next.to_owned()),
                    None => return anyhow::Ok(seen),
                }
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok(counts.iter().sum())
}

/// (busy, total) CPU jiffies of the whole machine, from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU seconds used so far by each running process whose command name is one of `names` (summed per name).
fn cpu_by_process(names: &[&str]) -> BTreeMap<String, f64> {
    let ticks = 100.0; // USER_HZ on Linux
    let mut used = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        if !names.contains(&name) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let cpu: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
        *used.entry(name.to_owned()).or_insert(0.0) += cpu / ticks;
    }
    used
}

/// Per-process CPU seconds between two `cpu_by_process` readings, as `name 1.2s` pairs.
fn cpu_delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    after
        .iter()
        .map(|(name, seconds)| format!("{name} {:.1}s", seconds - before.get(name).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

const CONTROL_PLANE: &[&str] = &["kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "cairn-s3"];

/// The machine's CPU use between two `cpu_jiffies` readings, in percent.
fn busy_percent(before: (u64, u64), after: (u64, u64)) -> f64 {
    let (busy, total) = (after.0 - before.0, after.1 - before.1);
    if total == 0 { 0.0 } else { busy as f64 * 100.0 / total as f64 }
}

/// The environment, a client and the benchmark's namespaces (named `<base>-NN`), once `cairn` is built.
async fn setup(cairn: &std::path::Path, base: &str) -> anyhow::Result<(TestEnv, Client, Vec<String>)> {
    if !cairn.is_file() {
        bail!("{} not found: build it first with `cargo build --release -p backup-cli`", cairn.display());
    }
    let env = TestEnv::get();
    let client = env.client().await;
    let mut namespaces = Vec::new();
    for i in 0..NAMESPACES {
        namespaces.push(env.namespace(&format!("{base}-{i:02}")).await);
    }
    Ok((env, client, namespaces))
}

async fn backup_bench(sizes: Vec<usize>, cairn: PathBuf) -> anyhow::Result<()> {
    let (env, client, namespaces) = setup(&cairn, "bench").await?;
    println!(
        "cairn backup benchmark: Kubernetes {}, S3 s3s-fs, {} cores",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?
    );
    println!(
        "{:>7} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "N", "objects", "floor-seq", "floor-x4", "backup", "b/a-seq", "b/a-x4", "objects/s", "archive", "peak RSS"
    );
    let mut loaded = 0;
    let mut first_rss = None;
    for size in sizes {
        load(&client, &namespaces, loaded, size, size).await?;
        loaded = size;
        // Let the controllers settle (ReplicaSets and Pods of the Deployments).
        tokio::time::sleep(Duration::from_secs(5)).await;
        let discovery = Discovery::run(&client).await?;
        // Rounds of floor, floor x4 and backup, side by side, MIN_ROUNDS to MAX_ROUNDS of them: one sample
        // on these shared cores varied from 0.74 to 1.27 times the floor at 5,000 objects; the medians are
        // printed, with each round's ratio and peak RSS.
        let mut rounds: Vec<Round> = Vec::new();
        let measuring = Instant::now();
        let mut listed = 0;
        while rounds.len() < MIN_ROUNDS || (rounds.len() < MAX_ROUNDS && measuring.elapsed() < ROUND_BUDGET) {
            let started = Instant::now();
            listed = list_everything(&client, &discovery.types, 1).await?;
            let floor_sequential = started.elapsed().as_secs_f64();
            let started = Instant::now();
            list_everything(&client, &discovery.types, BACKUP_CONCURRENCY).await?;
            let floor_concurrent = started.elapsed().as_secs_f64();

            let name = format!("bench-{size}-{}", rounds.len());
            let prefix = env.bucket_prefix(&name);
            let command = cairn_command(&cairn, &env, &prefix, &["backup", "create", &name, "-o", "json"]);
            let servers_before = cpu_by_process(CONTROL_PLANE);
            let (wall, rss_kib, cairn_cpu, output) = run_measured(command)?;
            let servers = cpu_delta(&servers_before, &cpu_by_process(CONTROL_PLANE));
            if !output.status.success() {
                bail!("cairn backup create failed: {}", String::from_utf8_lossy(&output.stderr));
            }
            let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            rounds.push(Round {
                floor_sequential,
                floor_concurrent,
                wall: wall.as_secs_f64(),
                rss_mib: rss_kib as f64 / 1024.0,
                objects: report["backup"]["status"]["progress"]["itemsBackedUp"].as_u64().unwrap_or(0),
                archive: report["backup"]["status"]["archive"]["size"].as_u64().unwrap_or(0),
                cpu: format!("cairn {cairn_cpu:.1}s, {servers}"),
            });
        }
        let floor_sequential = median(rounds.iter().map(|r| r.floor_sequential));
        let floor_concurrent = median(rounds.iter().map(|r| r.floor_concurrent));
        let wall = median(rounds.iter().map(|r| r.wall));
        let rss_mib = median(rounds.iter().map(|r| r.rss_mib));
        let last = rounds.last().expect("at least one round");
        println!(
            "{:>7} {:>9} {:>9.2}s {:>9.2}s {:>9.2}s {:>9.2} {:>9.2} {:>10.0} {:>8.1}MiB {:>7.1}MiB",
            size,
            last.objects,
            floor_sequential,
            floor_concurrent,
            wall,
            median(rounds.iter().map(|r| r.wall / r.floor_sequential)),
            median(rounds.iter().map(|r| r.wall / r.floor_concurrent)),
            last.objects as f64 / wall,
            last.archive as f64 / 1048576.0,
            rss_mib,
        );
        let ratios: Vec<String> = rounds.iter().map(|r| format!("{:.2}", r.wall / r.floor_sequential)).collect();
        let peaks: Vec<String> = rounds.iter().map(|r| format!("{:.1}", r.rss_mib)).collect();
        println!(
            "{:>7} medians of {} rounds; b/a-seq by round: {}; peak RSS (MiB) by round: {}",
            "",
            rounds.len(),
            ratios.join(", "),
            peaks.join(", ")
        );
        eprintln!("  (the floor listed {listed} objects in {} types)", discovery.types.len());
        // Where the backup's time goes on these shared cores: Cairn's own CPU and the servers' during it.
        println!("{:>7} CPU during the last backup: {}", "", last.cpu);
        match first_rss {
            None => first_rss = Some(rss_mib),
            Some(first) => println!("{:>7} peak RSS vs the first size: {:+.1}%", "", (rss_mib / first - 1.0) * 100.0),
        }
    }
    Ok(())
}

/// Measurement rounds per size: at least this many (a median of three outlives one disturbed round: one
/// round at 100,000 objects gave 1.43 times the floor beside one of 0.80)...
const MIN_ROUNDS: usize = 3;
/// ...and up to this many...
const MAX_ROUNDS: usize = 5;
/// ...while the rounds so far took less than this (one round at 100,000 objects takes about 12 s).
const ROUND_BUDGET: Duration = Duration::from_secs(20);

/// One round of the backup benchmark at one size: the floors and the backup, run one after the other.
struct Round {
    floor_sequential: f64,
    floor_concurrent: f64,
    wall: f64,
    rss_mib: f64,
    objects: u64,
    archive: u64,
    cpu: String,
}

/// The median of `values` (the mean of the middle two when there is an even number).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn cairn_command(cairn: &std::path::Path, env: &TestEnv, prefix: &str, args: &[&str]) -> Command {
    let mut command = Command::new(cairn);
    command
        .args(args)
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env("CAIRN_STORAGE", env.info().storage_url(prefix))
        .env("AWS_ACCESS_KEY_ID", &env.info().s3_access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.info().s3_secret_access_key);
    command
}

async fn restore_bench(objects: usize, cairn: PathBuf) -> anyhow::Result<()> {
    use backup_core::{
        archive::ItemPath,
        restore::{Transform, wave_of},
    };
    let (env, client, sources) = setup(&cairn, "src").await?;
    load(&client, &sources, 0, objects, objects).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let prefix = env.bucket_prefix("restore-bench");
    let included = sources.join(",");
    let backup =
        cairn_command(&cairn, &env, &prefix, &["backup", "create", "source", "--include-namespaces", &included])
            .output()?;
    if !backup.status.success() {
        bail!("the backup failed: {}", String::from_utf8_lossy(&backup.stderr));
    }

    // Baseline: every restorable object of the backup, created one at a time with one client (Velero's way).
    let store = env.s3_store(&prefix);
    let record = backup_core::backup::read_backup(&store, "source").await?.context("the backup record")?;
    let entries = cairn_tests::archive_read::archive_entries(&store, &record).await;
    let baseline_map: BTreeMap<String, String> = sources.iter().map(|s| (s.clone(), format!("{s}-base"))).collect();
    for target in baseline_map.values() {
        let namespace = k8s_openapi::api::core::v1::Namespace {
            metadata: ObjectMeta { name: Some(target.clone()), ..Default::default() },
            ..Default::default()
        };
        Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
    }
    let transform = Transform {
        namespace_mapping: &baseline_map,
        backup_name: "source",
        restore_name: "baseline",
        preserve_node_ports: false,
    };
    let discovery = Discovery::run(&client).await?;
    let mut work = Vec::new();
    for (path, bytes) in &entries {
        let Some(entry) = ItemPath::parse(path) else { continue };
        if wave_of(&entry.group_resource).is_none() || entry.namespace.is_none() {
            continue;
        }
        let Some(resource_type) = discovery.by_group_resource(&entry.group_resource) else { continue };
        let mut object: serde_json::Value = serde_json::from_slice(bytes)?;
        transform.apply(&entry.group_resource, &mut object);
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
        work.push((resource_type.list_path(Some(&namespace)), serde_json::to_vec(&object)?));
    }
    let cpu_before = cpu_jiffies();
    let processes_before = cpu_by_process(CONTROL_PLANE);
    let started = Instant::now();
    let mut created = 0u64;
    for (path, body) in &work {
        let request =
            http::Request::post(path.as_str()).header("content-type", "application/json").body(body.clone())?;
        if client.request_text(request).await.is_ok() {
            created += 1;
        }
    }
    let baseline = started.elapsed();
    let baseline_cpu = busy_percent(cpu_before, cpu_jiffies());
    let baseline_processes = cpu_delta(&processes_before, &cpu_by_process(CONTROL_PLANE));
    let cpu_before = cpu_jiffies();
    let processes_before = cpu_by_process(CONTROL_PLANE);

    let mappings: Vec<String> = sources.iter().map(|s| format!("{s}:{s}-copy")).collect();
    let (wall, rss_kib, cpu_seconds, output) = run_measured(cairn_command(
        &cairn,
        &env,
        &prefix,
        &[
            "restore",
            "create",
            "copy",
            "--from-backup",
            "source",
            "--namespace-mappings",
            &mappings.join(","),
            "-o",
            "json",
        ],
    ))?;
    let restore_cpu = busy_percent(cpu_before, cpu_jiffies());
    let processes_after = cpu_by_process(CONTROL_PLANE);
    let restore_processes = cpu_delta(&processes_before, &processes_after);
    // The floor this machine allows: the control plane's own CPU during the restore spread over the cores
    // (no client can be faster than the API server, etcd and the controllers take to do the work).
    let control_plane_seconds: f64 = processes_after
        .iter()
        .filter(|(name, _)| name.as_str() != "cairn-s3")
        .map(|(name, seconds)| seconds - processes_before.get(name).copied().unwrap_or(0.0))
        .sum();
    let cores = std::thread::available_parallelism()?.get() as f64;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("the restore failed: {}", String::from_utf8_lossy(&output.stderr)))?;
    if let Some(errors) = report["errors"].as_array().filter(|e| !e.is_empty()) {
        eprintln!("the restore had {} errors, the first: {}", errors.len(), errors[0]);
    }
    let restored = report["restore"]["status"]["itemsRestored"].as_u64().unwrap_or(0);
    if let Ok(log) = backup_core::restore::read_restore_log(&store, "copy").await {
        for line in log.lines().filter(|l| l.contains("retry round")) {
            eprintln!("  restore log: {line}");
        }
    }
    let (base_rate, restore_rate) = (created as f64 / baseline.as_secs_f64(), restored as f64 / wall.as_secs_f64());
    println!(
        "cairn restore benchmark: Kubernetes {}, {} cores, N = {objects}",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?
    );
    println!("{:>28} {:>9} {:>9} {:>11} {:>12}", "", "objects", "seconds", "objects/s", "machine CPU");
    println!(
        "{:>28} {:>9} {:>9.2} {:>11.0} {:>11.0}%",
        "one by one, one client",
        created,
        baseline.as_secs_f64(),
        base_rate,
        baseline_cpu
    );
    println!(
        "{:>28} {:>9} {:>9.2} {:>11.0} {:>11.0}%",
        "cairn restore create",
        restored,
        wall.as_secs_f64(),
        restore_rate,
        restore_cpu
    );
    println!(
        "ratio {:.2}x; restore peak RSS {:.1} MiB; cairn used {:.1} s of CPU",
        restore_rate / base_rate,
        rss_kib as f64 / 1024.0,
        cpu_seconds
    );
    println!("control plane CPU during the baseline: {baseline_processes}");
    println!("control plane CPU during the restore:  {restore_processes}");
    let floor = control_plane_seconds / cores;
    println!(
        "floor: {control_plane_seconds:.1} s of control-plane CPU / {cores} cores = {floor:.2} s; restore / floor = {:.2}",
        wall.as_secs_f64() / floor.max(0.001)
    );
    Ok(())
}

/// A process's resident memory now (VmRSS) and at its peak so far (VmHWM), in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Backup { sizes, cairn } => backup_bench(sizes, cairn).await,
        Bench::Server { objects, backups, cairn, server } => {
            server::server_bench(objects, backups, &cairn, &server).await
        }
        Bench::Sync { backups, period, cairn, server } => sync::sync_bench(backups, &period, &cairn, &server).await,
        Bench::Restore { objects, cairn } => restore_bench(objects, cairn).await,
        Bench::Velero { sizes, cairn, velero, plugin_dir } => {
            velero::velero_bench(sizes, &cairn, &velero, &plugin_dir).await
        }
        Bench::Images { nodes, images, cairn } => images::image_bench(nodes, images, &cairn).await,
        Bench::Drain { nodes, pods_per_node, concurrency, cairn, kubectl } => {
            let kubectl = kubectl.unwrap_or_else(|| {
                let version = cairn_tests::binaries::Versions::pinned().kubernetes;
                cairn_tests::binaries::cache_dir().join(format!("kubectl-{version}/bin/kubectl"))
            });
            drain::drain_bench(nodes, pods_per_node, concurrency, &cairn, &kubectl).await
        }
    }
}
