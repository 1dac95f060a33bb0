//! The Schedule resource: a cron expression and the Backup spec it stamps out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BackupSpec;

/// The shape the API server accepts for `spec.schedule`: five fields, a descriptor or `@every <duration>`, with
/// an optional `CRON_TZ=`/`TZ=` prefix. The server parses it fully and marks the Schedule FailedValidation
/// when a field is out of range.
pub(crate) const SCHEDULE_PATTERN: &str = r"^((CRON_TZ|TZ)=[^ ]+ +)?(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every +[0-9][0-9a-zµ.]*|[^ @]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+)$";

/// A schedule: when to back up and what.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "Schedule",
    namespaced,
    status = "ScheduleObjectStatus",
    shortname = "sch",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Last Backup","type":"date","jsonPath":".status.lastBackup"}"#,
    printcolumn = r#"{"name":"Paused","type":"boolean","jsonPath":".spec.paused"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Five cron fields (`0 3 * * *`), a descriptor (`@daily`) or `@every 1h`; `CRON_TZ=Europe/Paris ` may lead.
    #[schemars(pattern(SCHEDULE_PATTERN))]
    pub schedule: String,
    /// The spec of each Backup it creates.
    pub template: BackupSpec,
    /// Make the Schedule the owner of its Backups (deleting it then deletes their objects, not their data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_owner_references_in_backup: Option<bool>,
    /// Create no backups while true.
    #[serde(default)]
    pub paused: bool,
    /// A new schedule waits for its first cron time instead of firing at once; `cairn schedule unpause` then
    /// also skips the firing due at that moment (it records it in `lastSkipped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_immediately: Option<bool>,
}

/// A Schedule's phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SchedulePhase {
    /// Not yet seen by the server.
    #[default]
    New,
    /// Valid and firing (unless paused).
    Enabled,
    /// The schedule or template cannot be used; see `validationErrors`.
    FailedValidation,
}

impl SchedulePhase {
    /// The phase as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulePhase::New => "New",
            SchedulePhase::Enabled => "Enabled",
            SchedulePhase::FailedValidation => "FailedValidation",
        }
    }
}

/// Where a Schedule stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleObjectStatus {
    /// The phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SchedulePhase>,
    /// When it last created a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<Time>,
    /// When it last skipped a firing (a backup of it was still running, or skipImmediately).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skipped: Option<Time>,
    /// Why it cannot be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,
}

impl Schedule {
    /// The phase; New when the server has not seen it yet.
    pub fn phase(&self) -> SchedulePhase {
        self.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::SCHEDULE_PATTERN;

    fn matches(text: &str) -> bool {
        // The API server uses RE2; this pattern uses nothing RE2 and `regex` disagree on.
        regex_lite::Regex::new(SCHEDULE_PATTERN).unwrap().is_match(text)
    }

    #[test]
    fn schedule_pattern_accepts_what_the_parser_might_and_refuses_the_obviously_wrong() {
        for good in
            ["0 3 * * *", "*/5 * * * *", "@daily", "@every 5s", "@every 1h30m", "CRON_TZ=Europe/Paris 0 3 * * *"]
        {
            assert!(matches(good), "{good}");
        }
        for bad in ["", "every day", "0 3 * *", "@sometimes", "@every", "0 3 * * * *"] {
            assert!(!matches(bad), "{bad}");
        }
    }
}
