//! The contract between `cairn` and `backup-server`: the Lease the server holds while it runs (the CLI reads
//! it to tell whether a server runs), and the server's settings, which `cairn install` writes into its
//! Deployment as flags and environment variables.

use std::{net::SocketAddr, time::Duration};

use cairn_kube::{duration::parse_duration, size::parse_size};
use clap::Parser;

/// The Lease Cairn servers elect their leader on, in their namespace.
pub const SERVER_LEASE: &str = "cairn-server";

/// The variable the server reads its namespace from (the Deployment sets it from the downward API).
pub const NAMESPACE_VARIABLE: &str = "CAIRN_NAMESPACE";
/// The variable the server reads its replica's name from (the Deployment sets it to the pod's name).
pub const POD_NAME_VARIABLE: &str = "POD_NAME";
/// The port of `/metrics`, `/healthz` and `/readyz` unless `--metrics-address` says otherwise.
pub const DEFAULT_METRICS_PORT: u16 = 8085;

/// How the server writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event (for log collectors).
    Json,
}

/// The server's tunable settings, as `backup-server` parses them and `cairn install` writes them into its
/// Deployment: the one place their flags and defaults are spelled. The server flattens this into its
/// command line; [`ServerSettings::to_args`] renders the settings that differ from the defaults, and a
/// test parses them back with the server's own parser.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ServerSettings {
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_METRICS_PORT)))]
    pub metrics_address: SocketAddr,
    /// How often expired backups are deleted (Go duration).
    #[arg(long, default_value = "1h", value_parser = go_duration)]
    pub garbage_collection_frequency: String,
    /// How often each location's bucket is synchronised with the cluster; 0s disables (Go duration).
    #[arg(long, default_value = "1m", value_parser = go_duration)]
    pub backup_sync_period: String,
    /// How often each location's availability is checked (Go duration).
    #[arg(long, default_value = "1m", value_parser = go_duration)]
    pub store_validation_frequency: String,
    /// The TTL of backups that give none (Go duration).
    #[arg(long, default_value = crate::DEFAULT_TTL, value_parser = go_duration)]
    pub default_backup_ttl: String,
    /// The largest object a restore reads from an archive (bytes, or with Ki, Mi, Gi): above the API server's
    /// 3 MiB; a larger entry means a crafted archive, and the restore refuses it.
    #[arg(long, default_value = "4Mi", value_parser = parse_size)]
    pub restore_max_object_size: u64,
    /// Act only while holding the Lease `cairn-server`, so that of several replicas one acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long the Lease stays held without renewal: a standby takes over that long after the leader stops.
    #[arg(long, default_value = "15s", value_parser = go_duration)]
    pub leader_lease_duration: String,
    /// Log format: text, or json for log collectors (level, time, message and fields such as backup=NAME).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Checks a Go duration, keeping it as written (`5m` stays `5m` in the Deployment).
fn go_duration(text: &str) -> Result<String, String> {
    parse_duration(text).map(|_| text.to_owned()).map_err(|e| e.to_string())
}

/// A duration the parser has checked.
fn checked(text: &str) -> Duration {
    parse_duration(text).expect("settings hold only durations their parser accepted")
}

/// A command line of nothing but [`ServerSettings`], for its defaults and for reading rendered arguments.
#[derive(Debug, clap::Parser)]
struct SettingsOnly {
    #[command(flatten)]
    settings: ServerSettings,
}

impl Default for ServerSettings {
    /// The defaults the flags declare.
    fn default() -> Self {
        SettingsOnly::parse_from(["backup-server"]).settings
    }
}

impl ServerSettings {
    /// Reads settings from server arguments (`--backup-sync-period=5m ...`), as the server would.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<ServerSettings, String> {
        let argv = std::iter::once("backup-server".to_owned()).chain(args);
        SettingsOnly::try_parse_from(argv).map(|only| only.settings).map_err(|e| e.to_string())
    }

    /// The settings that differ from the defaults, as `--flag=value` arguments.
    pub fn to_args(&self) -> Vec<String> {
        let defaults = ServerSettings::default();
        let mut args = Vec::new();
        let mut add = |differs: bool, flag: &str, value: String| {
            if differs {
                args.push(format!("--{flag}={value}"));
            }
        };
        add(self.metrics_address != defaults.metrics_address, "metrics-address", self.metrics_address.to_string());
        for (flag, mine, default) in [
            (
                "garbage-collection-frequency",
                &self.garbage_collection_frequency,
                &defaults.garbage_collection_frequency,
            ),
            ("backup-sync-period", &self.backup_sync_period, &defaults.backup_sync_period),
            ("store-validation-frequency", &self.store_validation_frequency, &defaults.store_validation_frequency),
            ("default-backup-ttl", &self.default_backup_ttl, &defaults.default_backup_ttl),
            ("leader-lease-duration", &self.leader_lease_duration, &defaults.leader_lease_duration),
        ] {
            add(mine != default, flag, mine.clone());
        }
        let size = self.restore_max_object_size;
        add(size != defaults.restore_max_object_size, "restore-max-object-size", size.to_string());
        add(self.leader_elect != defaults.leader_elect, "leader-elect", self.leader_elect.to_string());
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        add(self.log_format != defaults.log_format, "log-format", format.to_owned());
        args
    }

    /// How often expired backups are deleted.
    pub fn gc_frequency(&self) -> Duration {
        checked(&self.garbage_collection_frequency)
    }

    /// How often buckets are synchronised, unless a location says otherwise.
    pub fn sync_period(&self) -> Duration {
        checked(&self.backup_sync_period)
    }

    /// How often locations are checked, unless a location says otherwise.
    pub fn validation_frequency(&self) -> Duration {
        checked(&self.store_validation_frequency)
    }

    /// How long the Lease stays held without renewal.
    pub fn lease_duration(&self) -> Duration {
        checked(&self.leader_lease_duration)
    }

    /// The port the server serves its metrics and probes on.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_address.port()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_survives_its_rendering_into_arguments() {
        let changed = ServerSettings {
            metrics_address: "127.0.0.1:9090".parse().unwrap(),
            garbage_collection_frequency: "2m".into(),
            backup_sync_period: "5s".into(),
            store_validation_frequency: "30s".into(),
            default_backup_ttl: "72h".into(),
            restore_max_object_size: 8 << 20,
            leader_elect: false,
            leader_lease_duration: "30s".into(),
            log_format: LogFormat::Json,
        };
        let args = changed.to_args();
        assert_eq!(args.len(), 9, "{args:?}");
        assert_eq!(ServerSettings::from_args(args).unwrap(), changed);
        assert!(ServerSettings::default().to_args().is_empty());
        assert_eq!(ServerSettings::default().metrics_port(), DEFAULT_METRICS_PORT);
        let refused = ServerSettings::from_args(["--backup-sync-period=5d".to_owned()]).unwrap_err();
        assert!(refused.contains("--backup-sync-period") && refused.contains("720h"), "{refused}");
    }
}
