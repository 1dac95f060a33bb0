//! The server benchmark: a backup run by `backup-server` as a Backup object against the same backup run
//! standalone by `cairn backup create`, with the server's resident memory idle, at its peak and after; then,
//! with `--backups N`, the same server process running N backups in a row, with its memory, open files,
//! threads and the API server's requests after each, and the trend of its memory.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use backup_core::store::Store;
use cairn_api::{AccessMode, Backup, BackupPhase, BackupSpec};
use cairn_tests::{
    measure::run_measured,
    server::{ServerProcess, create_s3_location, install_crds},
};
use kube::{Api, Client, api::PostParams};

use super::requests::ApiCounters;

pub(crate) async fn server_bench(objects: usize, series: usize, cairn: &Path, server: &Path) -> anyhow::Result<()> {
    if !server.is_file() {
        bail!("{} not found: build it first with `cargo build --release -p backup-server`", server.display());
    }
    let (env, client, namespaces) = super::setup(cairn, "srvbench").await?;
    println!(
        "cairn server benchmark: Kubernetes {}, S3 s3s-fs, {} cores, {objects} objects loaded",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?
    );
    super::load(&client, &namespaces, 0, objects, objects).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let prefix = env.bucket_prefix("srvbench");
    let command = super::cairn_command(cairn, &env, &prefix, &["backup", "create", "standalone", "-o", "json"]);
    let (standalone_wall, standalone_kib, _, output) = run_measured(command)?;
    if !output.status.success() {
        bail!("cairn backup create failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let backed_up = report["backup"]["status"]["progress"]["itemsBackedUp"].as_u64().unwrap_or(0);

    install_crds(&client).await;
    let namespace = env.namespace("srvbench-server").await;
    create_s3_location(&client, &env, &namespace, "main", &prefix, AccessMode::ReadWrite).await;
    let process = ServerProcess::start(server, &env, &namespace, "bench", &["--backup-sync-period", "0s"])?;
    let pid = process.pid().context("the server runs")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle, _) = super::memory_mib(pid);
    let backups: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    let started = Instant::now();
    backups.create(&PostParams::default(), &Backup::new("by-server", BackupSpec::default())).await?;
    let finished = loop {
        let backup = backups.get("by-server").await?;
        if !backup.phase().is_active() {
            break backup;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let server_wall = started.elapsed();
    if finished.phase() != BackupPhase::Completed {
        bail!("the server's backup ended {:?}: {:?}\n{}", finished.phase(), finished.status, process.tail());
    }
    let (after, peak) = super::memory_mib(pid);
    let by_server = finished.status.and_then(|s| s.progress).map_or(0, |p| p.items_backed_up);
    println!("{:>22} {:>9} {:>9} {:>10} {:>12}", "", "objects", "time", "objects/s", "peak RSS");
    println!(
        "{:>22} {:>9} {:>8.2}s {:>10.0} {:>10.1}MiB",
        "cairn (standalone)",
        backed_up,
        standalone_wall.as_secs_f64(),
        backed_up as f64 / standalone_wall.as_secs_f64(),
        standalone_kib as f64 / 1024.0
    );
    println!(
        "{:>22} {:>9} {:>8.2}s {:>10.0} {:>10.1}MiB",
        "backup-server",
        by_server,
        server_wall.as_secs_f64(),
        by_server as f64 / server_wall.as_secs_f64(),
        peak
    );
    println!(
        "server/standalone time: {:.2}; server memory: {idle:.1} MiB idle, {peak:.1} MiB at its peak, {after:.1} MiB after",
        server_wall.as_secs_f64() / standalone_wall.as_secs_f64()
    );
    if series > 0 {
        let run = Series { client: &client, backups: &backups, process: &process, pid, store: env.s3_store(&prefix) };
        run.run(series).await?;
    }
    Ok(())
}

/// How often the benchmark reads a running Backup (each read is an API request, subtracted from the counts).
const POLL: Duration = Duration::from_millis(100);
/// How long the API server's idle rate is measured before the series.
const IDLE_WINDOW: Duration = Duration::from_secs(20);

/// One long-running server and what the series needs to watch it.
struct Series<'a> {
    client: &'a Client,
    backups: &'a Api<Backup>,
    process: &'a ServerProcess,
    pid: u32,
    /// The bucket, to remove each backup's data once measured (the disk would not hold 200 archives).
    store: Store,
}

/// One backup of the series, measured.
struct Sample {
    seconds: f64,
    rss: f64,
    peak: f64,
    fds: usize,
    threads: u64,
    /// API requests from every client while it ran, the benchmark's own taken out.
    requests: f64,
    /// Of those, to `cairn.dev` resources (only Cairn's server sends those).
    cairn: f64,
}

impl Series<'_> {
    /// Runs `count` backups one after the other, printing a line after each and the memory trend at the end.
    async fn run(&self, count: usize) -> anyhow::Result<()> {
        // The idle rate: every client of the API server (controller-manager, scheduler, this server's
        // periodic loops and Lease) while no backup runs.
        let before = ApiCounters::read(self.client).await?;
        tokio::time::sleep(IDLE_WINDOW).await;
        let idle = ApiCounters::read(self.client).await?.since(&before);
        let idle_rate = (idle.total() - 1.0) / IDLE_WINDOW.as_secs_f64();
        println!(
            "\n{count} backups in a row by the same server process (one at a time, each waiting for the one before)"
        );
        println!(
            "API requests are the API server's own apiserver_request_total, which counts every client \
             (controller-manager, scheduler, this server); idle rate before the series: {idle_rate:.2}/s \
             ({})",
            idle.top(4)
        );
        println!(
            "\"above idle\" subtracts that rate times the backup's time; the benchmark's own reads are not counted"
        );
        println!(
            "{:>5} {:>8} {:>9} {:>9} {:>5} {:>8} {:>9} {:>10} {:>9}",
            "#", "seconds", "RSS MiB", "peak MiB", "fds", "threads", "API reqs", "above idle", "cairn.dev"
        );
        let mut samples = Vec::new();
        for index in 1..=count {
            let sample = self.one(index).await?;
            println!(
                "{:>5} {:>8.2} {:>9.1} {:>9.1} {:>5} {:>8} {:>9.0} {:>10.0} {:>9.0}",
                index,
                sample.seconds,
                sample.rss,
                sample.peak,
                sample.fds,
                sample.threads,
                sample.requests,
                sample.requests - idle_rate * sample.seconds,
                sample.cairn
            );
            samples.push(sample);
        }
        summarize(&samples, idle_rate);
        Ok(())
    }

    /// One backup: created, waited for, measured, its data removed from the bucket.
    async fn one(&self, index: usize) -> anyhow::Result<Sample> {
        let name = format!("series-{index:03}");
        let before = ApiCounters::read(self.client).await?;
        let started = Instant::now();
        self.backups.create(&PostParams::default(), &Backup::new(&name, BackupSpec::default())).await?;
        let mut reads = 0;
        let finished = loop {
            tokio::time::sleep(POLL).await;
            let backup = self.backups.get(&name).await?;
            reads += 1;
            if !backup.phase().is_active() {
                break backup;
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let delta = ApiCounters::read(self.client).await?.since(&before);
        if finished.phase() != BackupPhase::Completed {
            bail!("backup {name} ended {:?}: {:?}\n{}", finished.phase(), finished.status, self.process.tail());
        }
        let (rss, peak) = super::memory_mib(self.pid);
        let (fds, threads) = open_files_and_threads(self.pid);
        // The benchmark's own: the create, the reads, the metrics GET before.
        let own = 2.0 + reads as f64;
        let sample = Sample {
            seconds,
            rss,
            peak,
            fds,
            threads,
            requests: delta.total() - own,
            cairn: delta.cairn() - own + 1.0,
        };
        self.remove_data(&name).await?;
        Ok(sample)
    }

    /// Removes the files of backup `name` from the bucket (the Backup object stays; sync is off, so the
    /// server never looks).
    async fn remove_data(&self, name: &str) -> anyhow::Result<()> {
        self.store.delete_backup(name).await?;
        Ok(())
    }
}

/// Open file descriptors (entries of /proc/PID/fd) and threads (Threads: in /proc/PID/status).
fn open_files_and_threads(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads =
        status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (fds, threads)
}

/// The least-squares slope of `values` against their index.
fn slope(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - mean_x;
        covariance += dx * (y - mean_y);
        variance += dx * dx;
    }
    if variance == 0.0 { 0.0 } else { covariance / variance }
}

/// The series' memory trend over its last 150 backups (the last 3/4 below 200) with the verdict, and the
/// ranges of the other figures.
fn summarize(samples: &[Sample], idle_rate: f64) {
    let window = if samples.len() >= 200 { 150 } else { samples.len() * 3 / 4 };
    if window < 3 {
        println!("(a memory trend needs at least 4 backups: --backups 200 measures it over the last 150)");
        return;
    }
    let tail = &samples[samples.len() - window..];
    let rss: Vec<f64> = tail.iter().map(|s| s.rss).collect();
    let mean = rss.iter().sum::<f64>() / rss.len() as f64;
    let per_backup = slope(&rss);
    let rise = per_backup * (window - 1) as f64;
    let bound = (mean * 0.02).max(1.0);
    let range = |values: Vec<f64>| {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    };
    let (rss_min, rss_max) = range(rss.clone());
    let (fd_min, fd_max) = range(samples.iter().map(|s| s.fds as f64).collect());
    let (thread_min, thread_max) = range(samples.iter().map(|s| s.threads as f64).collect());
    let seconds: f64 = samples.iter().map(|s| s.seconds).sum();
    let requests: f64 = samples.iter().map(|s| s.requests).sum();
    let cairn: f64 = samples.iter().map(|s| s.cairn).sum();
    let n = samples.len() as f64;
    println!(
        "RSS over the last {window} backups: mean {mean:.1} MiB, min {rss_min:.1}, max {rss_max:.1}; least-squares \
         slope {per_backup:+.4} MiB per backup, fitted rise over the window {rise:+.2} MiB; peak (VmHWM) at the end {:.1} MiB",
        samples.last().map_or(0.0, |s| s.peak)
    );
    println!(
        "criterion: no upward trend when the fitted rise over the window is below the larger of 1 MiB and 2% of \
         the window's mean RSS ({bound:.2} MiB): {}",
        if rise < bound { "no upward trend" } else { "UPWARD TREND" }
    );
    println!(
        "open fds {fd_min:.0}-{fd_max:.0}, threads {thread_min:.0}-{thread_max:.0} over all {} backups; mean \
         {:.2} s per backup",
        samples.len(),
        seconds / n
    );
    println!(
        "API requests per backup (mean): {:.1} from every client, {:.1} above idle ({idle_rate:.2}/s), {:.1} to cairn.dev",
        requests / n,
        (requests - idle_rate * seconds) / n,
        cairn / n
    );
}
