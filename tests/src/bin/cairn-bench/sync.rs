//! The sync benchmark: a bucket holding many stored backups (one real backup by `cairn backup create`, its
//! record copied under other names, as many writers in flight as the S3 server takes), a fresh
//! `backup-server` pointed at it through a counting proxy, and: the time until every backup is a Backup
//! object, the server's memory then, and what each sync period costs the bucket and the API server once
//! nothing changes, and when one new backup appears.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use backup_core::backup::{BackupRecord, create_record, read_backup};
use cairn_api::{AccessMode, Backup, BackupPhase};
use cairn_tests::{
    TestEnv,
    server::{ServerProcess, create_s3_location_at, install_crds},
};
use futures::{StreamExt, TryStreamExt, stream};
use kube::{Api, Client, api::ListParams};

use super::requests::{ApiCounters, BucketCounts, CountingProxy, human_bytes};

/// Records written to the bucket at once while seeding.
const SEED_CONCURRENCY: usize = 64;
/// How long the API server's noise (controller-manager, scheduler) is measured before the server starts.
const NOISE_WINDOW: Duration = Duration::from_secs(20);
/// Sync periods measured in steady state.
const STEADY_PERIODS: u32 = 10;
/// The longest the benchmark waits for the server to show every backup.
const PATIENCE: Duration = Duration::from_secs(3600);

/// The environment, the server and the counters the phases share.
struct Bench<'a> {
    client: Client,
    backups: Api<Backup>,
    proxy: CountingProxy,
    pid: u32,
    period: Duration,
    /// Requests per second of every other client of the API server, measured before the server started.
    noise_rate: f64,
    process: &'a ServerProcess,
}

/// What a window of sync periods cost.
struct Cost {
    periods: f64,
    bucket: BucketCounts,
    api: ApiCounters,
    /// API requests from this server: every client's, less the noise rate over the window and the
    /// benchmark's own.
    api_requests: f64,
}

pub(crate) async fn sync_bench(count: usize, period: &str, cairn: &Path, server: &Path) -> anyhow::Result<()> {
    for binary in [cairn, server] {
        if !binary.is_file() {
            bail!("{} not found: build it first with `cargo build --release`", binary.display());
        }
    }
    if count < 1 {
        bail!("--backups must be at least 1");
    }
    let period_length = cairn_kube::duration::parse_duration(period)?;
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("syncbench").await;
    let prefix = env.bucket_prefix("syncbench");
    println!(
        "cairn sync benchmark: Kubernetes {}, S3 s3s-fs, {} cores, {count} stored backups, --backup-sync-period {period}",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?
    );

    let store = env.s3_store(&prefix);
    let seeding = Instant::now();
    let output =
        super::cairn_command(cairn, &env, &prefix, &["backup", "create", "seed", "--include-namespaces", &namespace])
            .output()?;
    if !output.status.success() {
        bail!("cairn backup create failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let seed = read_backup(&store, "seed").await?.context("the seed backup's record")?;
    stream::iter(1..count)
        .map(|i| {
            let (store, record) = (&store, copy_named(&seed, format!("backup-{i:05}")));
            async move { create_record(store, &record).await }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "bucket seeded in {:.1} s: backup \"seed\" by cairn backup create, and {} copies of its record under other names",
        seeding.elapsed().as_secs_f64(),
        count - 1
    );

    install_crds(&client).await;
    let proxy = CountingProxy::start(env.s3_address())?;
    create_s3_location_at(&client, &env, &namespace, "main", &prefix, AccessMode::ReadWrite, &proxy.url()).await;
    let quiet = ApiCounters::read(&client).await?;
    tokio::time::sleep(NOISE_WINDOW).await;
    let noise = ApiCounters::read(&client).await?.since(&quiet);
    let noise_rate = (noise.total() - 1.0) / NOISE_WINDOW.as_secs_f64();
    println!(
        "API requests are the API server's apiserver_request_total, which counts every client; without a Cairn \
         server the others send {noise_rate:.2}/s ({}), subtracted below, as are the benchmark's own",
        noise.top(4)
    );

    let started = Instant::now();
    let process = ServerProcess::start(server, &env, &namespace, "sync", &["--backup-sync-period", period])?;
    let pid = process.pid().context("the server runs")?;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    let bench = Bench { client, backups, proxy, pid, period: period_length, noise_rate, process: &process };
    bench.initial_sync(count, started).await?;
    let steady = bench.steady().await?;
    bench.one_new(&store, &seed, &steady).await?;
    Ok(())
}

/// `record` under another name (a record names its own folder, or it is refused as damaged).
fn copy_named(record: &BackupRecord, name: String) -> BackupRecord {
    let mut copy = record.clone();
    copy.metadata.name = name;
    copy
}

impl Bench<'_> {
    /// Waits until the fresh server shows `count` Backup objects, then until every one has its status from
    /// the bucket; prints both times and the server's memory.
    async fn initial_sync(&self, count: usize, started: Instant) -> anyhow::Result<()> {
        let bucket_before = self.proxy.counts();
        loop {
            let shown = self.count_objects().await?;
            if shown >= count {
                break;
            }
            if started.elapsed() > PATIENCE {
                bail!("only {shown} of {count} backups shown after {PATIENCE:?}\n{}", self.process.tail());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let shown_after = started.elapsed();
        let (rss, peak) = super::memory_mib(self.pid);
        println!(
            "a fresh server showed all {count} backups as Backup objects {:.1} s after it started (counted with a \
             limit=1 list every 250 ms); its RSS then {rss:.1} MiB, peak {peak:.1} MiB",
            shown_after.as_secs_f64()
        );
        loop {
            let listed = self.backups.list(&ListParams::default()).await?.items;
            let pending = listed.iter().filter(|b| b.phase() != BackupPhase::Completed).count();
            if pending == 0 {
                break;
            }
            if started.elapsed() > PATIENCE {
                bail!("{pending} backups still without their status after {PATIENCE:?}\n{}", self.process.tail());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let bucket = self.proxy.counts().since(&bucket_before);
        let (rss, peak) = super::memory_mib(self.pid);
        println!(
            "every object Completed (its status from the stored record) {:.1} s after the start; RSS {rss:.1} MiB, \
             peak {peak:.1} MiB; the bucket got {}",
            started.elapsed().as_secs_f64(),
            bucket.describe()
        );
        // Whatever the server still has queued settles before the steady state is measured.
        tokio::time::sleep(self.period * 3).await;
        Ok(())
    }

    /// Backup objects now: one `limit=1` list and its remaining item count.
    async fn count_objects(&self) -> anyhow::Result<usize> {
        let page = self.backups.list_metadata(&ListParams::default().limit(1)).await?;
        match page.metadata.remaining_item_count {
            Some(remaining) => Ok(page.items.len() + remaining as usize),
            None if page.metadata.continue_.as_deref().is_some_and(|c| !c.is_empty()) => {
                Ok(self.backups.list_metadata(&ListParams::default()).await?.items.len())
            }
            None => Ok(page.items.len()),
        }
    }

    /// Measures `STEADY_PERIODS` periods in which nothing changes.
    async fn steady(&self) -> anyhow::Result<Cost> {
        let cost = self
            .measure(|| async {
                tokio::time::sleep(self.period * STEADY_PERIODS).await;
                Ok(0)
            })
            .await?;
        let (rss, peak) = super::memory_mib(self.pid);
        println!(
            "steady state, {:.1} periods measured; per period: bucket {}; API server {:.1} requests from this server \
             ({:.1} to cairn.dev, {} in responses); RSS {rss:.1} MiB, peak {peak:.1} MiB",
            cost.periods,
            per_period(&cost.bucket, cost.periods),
            cost.api_requests / cost.periods,
            cost.api.cairn() / cost.periods,
            human_bytes(cost.api.total_bytes() / cost.periods),
        );
        println!("  API requests in the whole window, every client: {}", cost.api.top(8));
        Ok(cost)
    }

    /// Writes one more backup into the bucket and measures the periods until its object is Completed, plus
    /// one; prints what they cost above the steady state.
    async fn one_new(
        &self,
        store: &backup_core::store::Store,
        seed: &BackupRecord,
        steady: &Cost,
    ) -> anyhow::Result<()> {
        let name = "backup-new";
        let mut appeared = None;
        let cost = self
            .measure(|| async {
                let written = Instant::now();
                create_record(store, &copy_named(seed, name.to_owned())).await?;
                let mut reads = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    reads += 1;
                    let backup = self.backups.get_opt(name).await?;
                    if backup.is_some_and(|b| b.phase() == BackupPhase::Completed) {
                        break;
                    }
                    if written.elapsed() > self.period * 10 + Duration::from_secs(30) {
                        bail!("the new backup did not appear\n{}", self.process.tail());
                    }
                }
                appeared = Some(written.elapsed());
                // The rest of the period it appeared in and one more.
                let periods = (written.elapsed().as_secs_f64() / self.period.as_secs_f64()).ceil() + 1.0;
                tokio::time::sleep(self.period.mul_f64(periods).saturating_sub(written.elapsed())).await;
                Ok(reads)
            })
            .await?;
        let steady_bucket = steady.bucket.total() as f64 / steady.periods * cost.periods;
        let steady_api = steady.api_requests / steady.periods * cost.periods;
        println!(
            "one new backup written to the bucket: Completed object after {:.2} s; the {:.1} periods around it cost \
             the bucket {} and the API server {:.1} requests from this server; above the steady state: {:+.1} bucket \
             requests, {:+.1} API requests",
            appeared.unwrap_or_default().as_secs_f64(),
            cost.periods,
            cost.bucket.describe(),
            cost.api_requests,
            cost.bucket.total() as f64 - steady_bucket,
            cost.api_requests - steady_api,
        );
        println!("  API requests in that window, every client: {}", cost.api.top(8));
        Ok(())
    }

    /// Runs `work` (which returns the API requests it sent itself) and counts what the window cost.
    async fn measure<F, Fut>(&self, work: F) -> anyhow::Result<Cost>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<u64>>,
    {
        let api_before = ApiCounters::read(&self.client).await?;
        let bucket_before = self.proxy.counts();
        let started = Instant::now();
        let own = work().await?;
        let elapsed = started.elapsed();
        let bucket = self.proxy.counts().since(&bucket_before);
        let api = ApiCounters::read(&self.client).await?.since(&api_before);
        let api_requests = api.total() - 1.0 - own as f64 - self.noise_rate * elapsed.as_secs_f64();
        Ok(Cost { periods: elapsed.as_secs_f64() / self.period.as_secs_f64(), bucket, api, api_requests })
    }
}

/// `LIST 10.0, GET 0.0 (34.5 KiB received)` per period.
fn per_period(counts: &BucketCounts, periods: f64) -> String {
    let kinds: Vec<String> =
        counts.by_kind.iter().map(|(kind, n)| format!("{kind} {:.1}", *n as f64 / periods)).collect();
    let kinds = if kinds.is_empty() { "no requests".to_owned() } else { kinds.join(", ") };
    format!("{kinds} ({} received)", human_bytes(counts.bytes_down as f64 / periods))
}
