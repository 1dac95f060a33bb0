//! The server's Prometheus metrics: Velero's names and labels under the prefix `cairn_`, so dashboards and
//! alerts written for Velero port by changing the prefix. Rendered as OpenMetrics text by `render`.
//!
//! Velero's conventions, kept here: a backup or restore that fails validation counts only in
//! `*_validation_fail*_total` (not as an attempt); the other outcomes are counted as attempts when they start
//! and once more by their final phase. Backup metrics carry the `schedule` label with the schedule's name,
//! empty for a backup made by hand.

use std::time::{Duration, SystemTime};

use cairn_api::{BackupPhase, RestoreObjectPhase};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Velero's buckets for `backup_duration_seconds`: 1, 5, 10, 15 and 30 minutes; 1, 2, 3 and 4 hours.
const DURATION_BUCKETS: [f64; 9] = [60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0];

/// The label of every per-schedule metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleLabel {
    schedule: String,
}

fn label(schedule: &str) -> ScheduleLabel {
    ScheduleLabel { schedule: schedule.to_owned() }
}

type PerSchedule<M> = Family<ScheduleLabel, M>;

/// The label of every image-prune metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    policy: String,
}

/// The labels of the images an ImagePrunePolicy's last run kept, by reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeptLabel {
    policy: String,
    reason: String,
}
type DurationFamily = Family<ScheduleLabel, Histogram, fn() -> Histogram>;

/// Every metric the server exports. `Send + Sync`: share one as `Arc<Metrics>` between the controllers
/// (which record events) and the HTTP server (which renders them).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    backup_attempt: PerSchedule<Counter>,
    backup_success: PerSchedule<Counter>,
    backup_partial_failure: PerSchedule<Counter>,
    backup_failure: PerSchedule<Counter>,
    backup_validation_failure: PerSchedule<Counter>,
    backup_duration: DurationFamily,
    backup_tarball_size: PerSchedule<Gauge>,
    backup_items: PerSchedule<Gauge>,
    backup_last_successful: PerSchedule<Gauge>,
    backup_deletion_attempt: PerSchedule<Counter>,
    backup_deletion_success: PerSchedule<Counter>,
    backup_deletion_failure: PerSchedule<Counter>,
    restore_attempt: PerSchedule<Counter>,
    restore_success: PerSchedule<Counter>,
    restore_partial_failure: PerSchedule<Counter>,
    restore_failure: PerSchedule<Counter>,
    restore_validation_failed: PerSchedule<Counter>,
    backup_total: Gauge,
    restore_total: Gauge,
    image_prune_runs: Family<PolicyLabel, Counter>,
    image_prune_bytes_freed: Family<PolicyLabel, Counter>,
    image_prune_images_removed: Family<PolicyLabel, Counter>,
    image_prune_node_failures: Family<PolicyLabel, Counter>,
    image_prune_images_kept: Family<KeptLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics registered, none observed yet.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        // Counters are registered without `_total`: the encoder appends it, as OpenMetrics requires.
        let mut counter = |name: &str, help: &str| {
            let family = PerSchedule::<Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let backup_attempt = counter("backup_attempt", "Total number of attempted backups");
        let backup_success = counter("backup_success", "Total number of successful backups");
        let backup_partial_failure = counter("backup_partial_failure", "Total number of partially failed backups");
        let backup_failure = counter("backup_failure", "Total number of failed backups");
        let backup_validation_failure =
            counter("backup_validation_failure", "Total number of validation failed backups");
        let backup_deletion_attempt = counter("backup_deletion_attempt", "Total number of attempted backup deletions");
        let backup_deletion_success = counter("backup_deletion_success", "Total number of successful backup deletions");
        let backup_deletion_failure = counter("backup_deletion_failure", "Total number of failed backup deletions");
        let restore_attempt = counter("restore_attempt", "Total number of attempted restores");
        let restore_success = counter("restore_success", "Total number of successful restores");
        let restore_partial_failure = counter("restore_partial_failure", "Total number of partially failed restores");
        let restore_failure = counter("restore_failed", "Total number of failed restores");
        let restore_validation_failed =
            counter("restore_validation_failed", "Total number of failed restores failing validations");

        let mut gauge = |name: &str, help: &str| {
            let family = PerSchedule::<Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let backup_tarball_size = gauge("backup_tarball_size_bytes", "Size, in bytes, of a backup");
        let backup_items = gauge("backup_items_total", "Total number of items backed up");
        let backup_last_successful =
            gauge("backup_last_successful_timestamp", "Last time a backup ran successfully, Unix timestamp in seconds");

        let backup_duration: DurationFamily =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS.iter().copied()));
        registry.register(
            "backup_duration_seconds",
            "Time taken to complete backup, in seconds",
            backup_duration.clone(),
        );

        let backup_total = Gauge::default();
        registry.register("backup_total", "Current number of existent backups", backup_total.clone());
        let restore_total = Gauge::default();
        registry.register("restore_total", "Current number of existent restores", restore_total.clone());

        let mut policy_counter = |name: &str, help: &str| {
            let family = Family::<PolicyLabel, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let image_prune_runs = policy_counter("image_prune_runs", "Total number of finished image prune runs");
        let image_prune_bytes_freed = policy_counter(
            "image_prune_bytes_freed",
            "Total bytes image prunes freed on the nodes (dry runs count none)",
        );
        let image_prune_images_removed =
            policy_counter("image_prune_images_removed", "Total number of images image prunes removed");
        let image_prune_node_failures = policy_counter(
            "image_prune_node_failures",
            "Total number of nodes whose prune failed, timed out or had no image agent",
        );
        let image_prune_images_kept = Family::<KeptLabel, Gauge>::default();
        registry.register(
            "image_prune_images_kept",
            "Images the last run of an image prune policy kept, by reason",
            image_prune_images_kept.clone(),
        );

        Metrics {
            registry,
            backup_attempt,
            backup_success,
            backup_partial_failure,
            backup_failure,
            backup_validation_failure,
            backup_duration,
            backup_tarball_size,
            backup_items,
            backup_last_successful,
            backup_deletion_attempt,
            backup_deletion_success,
            backup_deletion_failure,
            restore_attempt,
            restore_success,
            restore_partial_failure,
            restore_failure,
            restore_validation_failed,
            backup_total,
            restore_total,
            image_prune_runs,
            image_prune_bytes_freed,
            image_prune_images_removed,
            image_prune_node_failures,
            image_prune_images_kept,
        }
    }

    /// A run of the ImagePrunePolicy `policy` finished: what it freed and removed (both zero in a dry run),
    /// how many nodes failed, and what it kept by reason.
    pub(crate) fn image_prune_finished(
        &self,
        policy: &str,
        freed: u64,
        removed: u64,
        failed_nodes: u64,
        kept: &std::collections::BTreeMap<String, u32>,
    ) {
        let label = PolicyLabel { policy: policy.to_owned() };
        self.image_prune_runs.get_or_create(&label).inc();
        self.image_prune_bytes_freed.get_or_create(&label).inc_by(freed);
        self.image_prune_images_removed.get_or_create(&label).inc_by(removed);
        self.image_prune_node_failures.get_or_create(&label).inc_by(failed_nodes);
        for (reason, count) in kept {
            let label = KeptLabel { policy: policy.to_owned(), reason: reason.clone() };
            self.image_prune_images_kept.get_or_create(&label).set(i64::from(*count));
        }
    }

    /// A valid backup starts (`schedule` empty for one made by hand).
    pub(crate) fn backup_attempt(&self, schedule: &str) {
        self.backup_attempt.get_or_create(&label(schedule)).inc();
    }

    /// A backup ended in `phase`, after `duration`, with an archive of `tarball_bytes` holding `items`
    /// objects. Completed, PartiallyFailed and Failed are counted (Completed also stamps
    /// `backup_last_successful_timestamp`), FailedValidation as a validation failure; phases that are not
    /// final count nothing.
    pub(crate) fn backup_finished(
        &self,
        schedule: &str,
        phase: BackupPhase,
        duration: Duration,
        tarball_bytes: u64,
        items: u64,
    ) {
        let label = label(schedule);
        let outcome = match phase {
            BackupPhase::Completed => &self.backup_success,
            BackupPhase::PartiallyFailed => &self.backup_partial_failure,
            BackupPhase::Failed => &self.backup_failure,
            BackupPhase::FailedValidation => return self.backup_validation_failed(schedule),
            BackupPhase::New | BackupPhase::InProgress | BackupPhase::Deleting => return,
        };
        outcome.get_or_create(&label).inc();
        self.backup_duration.get_or_create(&label).observe(duration.as_secs_f64());
        self.backup_tarball_size.get_or_create(&label).set(saturating_i64(tarball_bytes));
        self.backup_items.get_or_create(&label).set(saturating_i64(items));
        if phase == BackupPhase::Completed {
            self.backup_last_successful.get_or_create(&label).set(unix_seconds(SystemTime::now()));
        }
    }

    /// A backup's spec failed validation; it is not counted as an attempt.
    pub(crate) fn backup_validation_failed(&self, schedule: &str) {
        self.backup_validation_failure.get_or_create(&label(schedule)).inc();
    }

    /// A backup of `schedule` was deleted (`succeeded`) or its deletion failed; counts the attempt too.
    pub(crate) fn backup_deletion(&self, schedule: &str, succeeded: bool) {
        let label = label(schedule);
        self.backup_deletion_attempt.get_or_create(&label).inc();
        let outcome = if succeeded { &self.backup_deletion_success } else { &self.backup_deletion_failure };
        outcome.get_or_create(&label).inc();
    }

    /// A valid restore starts; `schedule` is the schedule whose backup it restores, or empty.
    pub(crate) fn restore_attempt(&self, schedule: &str) {
        self.restore_attempt.get_or_create(&label(schedule)).inc();
    }

    /// A restore ended in `phase`: Completed, PartiallyFailed and Failed are counted, FailedValidation as a
    /// validation failure; phases that are not final count nothing.
    pub(crate) fn restore_finished(&self, schedule: &str, phase: RestoreObjectPhase) {
        let outcome = match phase {
            RestoreObjectPhase::Completed => &self.restore_success,
            RestoreObjectPhase::PartiallyFailed => &self.restore_partial_failure,
            RestoreObjectPhase::Failed => &self.restore_failure,
            RestoreObjectPhase::FailedValidation => return self.restore_validation_failed(schedule),
            RestoreObjectPhase::New | RestoreObjectPhase::InProgress => return,
        };
        outcome.get_or_create(&label(schedule)).inc();
    }

    /// A restore's spec failed validation; it is not counted as an attempt.
    pub(crate) fn restore_validation_failed(&self, schedule: &str) {
        self.restore_validation_failed.get_or_create(&label(schedule)).inc();
    }

    /// How many Backup and Restore objects exist now.
    pub(crate) fn set_totals(&self, backups: i64, restores: i64) {
        self.backup_total.set(backups);
        self.restore_total.set(restores);
    }

    /// Every metric as OpenMetrics text, ending with `# EOF`; serve it as [`Metrics::CONTENT_TYPE`].
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// The content type of [`Metrics::render`]'s text.
    pub(crate) const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| saturating_i64(since.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(metrics: &Metrics) -> Vec<String> {
        metrics.render().lines().map(str::to_owned).collect()
    }

    fn assert_has(lines: &[String], expected: &str) {
        assert!(lines.iter().any(|line| line == expected), "no line {expected:?} in:\n{}", lines.join("\n"));
    }

    #[test]
    fn backups_are_counted_per_schedule_by_outcome() {
        let metrics = Metrics::new();
        metrics.backup_attempt("nightly");
        metrics.backup_attempt("nightly");
        metrics.backup_attempt("");
        metrics.backup_finished("nightly", BackupPhase::Completed, Duration::from_secs(90), 2048, 17);
        metrics.backup_finished("nightly", BackupPhase::PartiallyFailed, Duration::from_secs(30), 1024, 12);
        metrics.backup_finished("", BackupPhase::Failed, Duration::from_secs(5), 0, 0);
        metrics.backup_validation_failed("nightly");
        let lines = lines(&metrics);
        assert_has(&lines, r#"cairn_backup_attempt_total{schedule="nightly"} 2"#);
        assert_has(&lines, r#"cairn_backup_attempt_total{schedule=""} 1"#);
        assert_has(&lines, r#"cairn_backup_success_total{schedule="nightly"} 1"#);
        assert_has(&lines, r#"cairn_backup_partial_failure_total{schedule="nightly"} 1"#);
        assert_has(&lines, r#"cairn_backup_failure_total{schedule=""} 1"#);
        assert_has(&lines, r#"cairn_backup_validation_failure_total{schedule="nightly"} 1"#);
        assert_has(&lines, r#"cairn_backup_tarball_size_bytes{schedule="nightly"} 1024"#);
        assert_has(&lines, r#"cairn_backup_items_total{schedule="nightly"} 12"#);
        assert_has(&lines, "# TYPE cairn_backup_duration_seconds histogram");
        assert_has(&lines, r#"cairn_backup_duration_seconds_count{schedule="nightly"} 2"#);
        assert_has(&lines, r#"cairn_backup_duration_seconds_bucket{le="60.0",schedule="nightly"} 1"#);
        assert_has(&lines, r#"cairn_backup_duration_seconds_bucket{le="300.0",schedule="nightly"} 2"#);
        assert_eq!(lines.last().map(String::as_str), Some("# EOF"));
    }

    #[test]
    fn only_a_completed_backup_stamps_the_last_successful_time() {
        let metrics = Metrics::new();
        metrics.backup_finished("hourly", BackupPhase::PartiallyFailed, Duration::from_secs(1), 1, 1);
        assert!(!metrics.render().contains("cairn_backup_last_successful_timestamp{"));
        let before = unix_seconds(SystemTime::now());
        metrics.backup_finished("hourly", BackupPhase::Completed, Duration::from_secs(1), 1, 1);
        let line = lines(&metrics)
            .into_iter()
            .find(|line| line.starts_with(r#"cairn_backup_last_successful_timestamp{schedule="hourly"} "#))
            .expect("a timestamp line");
        let stamped: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(stamped >= before, "{stamped} < {before}");
    }

    #[test]
    fn a_backup_that_is_not_final_counts_nothing() {
        let metrics = Metrics::new();
        metrics.backup_finished("nightly", BackupPhase::InProgress, Duration::from_secs(1), 1, 1);
        assert!(!metrics.render().contains(r#"schedule="nightly""#));
    }

    #[test]
    fn deletions_count_the_attempt_and_the_outcome() {
        let metrics = Metrics::new();
        metrics.backup_deletion("weekly", true);
        metrics.backup_deletion("weekly", false);
        metrics.backup_deletion("weekly", true);
        let lines = lines(&metrics);
        assert_has(&lines, r#"cairn_backup_deletion_attempt_total{schedule="weekly"} 3"#);
        assert_has(&lines, r#"cairn_backup_deletion_success_total{schedule="weekly"} 2"#);
        assert_has(&lines, r#"cairn_backup_deletion_failure_total{schedule="weekly"} 1"#);
    }

    #[test]
    fn restores_are_counted_by_outcome_and_totals_are_gauges() {
        let metrics = Metrics::new();
        metrics.restore_attempt("nightly");
        metrics.restore_finished("nightly", RestoreObjectPhase::Completed);
        metrics.restore_finished("nightly", RestoreObjectPhase::PartiallyFailed);
        metrics.restore_finished("", RestoreObjectPhase::Failed);
        metrics.restore_finished("", RestoreObjectPhase::FailedValidation);
        metrics.set_totals(7, 3);
        let lines = lines(&metrics);
        assert_has(&lines, r#"cairn_restore_attempt_total{schedule="nightly"} 1"#);
        assert_has(&lines, r#"cairn_restore_success_total{schedule="nightly"} 1"#);
        assert_has(&lines, r#"cairn_restore_partial_failure_total{schedule="nightly"} 1"#);
        assert_has(&lines, r#"cairn_restore_failed_total{schedule=""} 1"#);
        assert_has(&lines, r#"cairn_restore_validation_failed_total{schedule=""} 1"#);
        assert_has(&lines, "# TYPE cairn_backup_total gauge");
        assert_has(&lines, "cairn_backup_total 7");
        assert_has(&lines, "cairn_restore_total 3");
    }

    #[test]
    fn metrics_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Metrics>();
    }
}
