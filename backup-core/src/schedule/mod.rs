//! Schedules as Velero reads them (robfig/cron's standard parser): five cron fields (minute hour
//! day-of-month month day-of-week, day fields OR-ed as in vixie cron), the descriptors `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, `@every <duration>`, and a
//! `CRON_TZ=<zone>` (or `TZ=<zone>`) prefix; UTC otherwise. Pure: no clock is read here.

mod firing;
mod stamp;

use std::{str::FromStr, time::Duration};

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use jiff::{Timestamp, tz::TimeZone};

use cairn_kube::duration::parse_duration;

pub use firing::{Firing, History, backup_name, decide};
pub use stamp::stamp_backup;

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid schedule {text:?}: {problem}; use five cron fields (\"0 3 * * *\"), a descriptor (@daily, @hourly, @every 6h) or CRON_TZ=Europe/Berlin 0 3 * * *"
)]
pub struct ScheduleError {
    text: String,
    problem: String,
}

/// When backups are due.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron pattern, evaluated in a time zone.
    Cron {
        /// The pattern (five fields; descriptors expanded by the parser).
        cron: Box<Cron>,
        /// Where the pattern's wall-clock times are.
        zone: TimeZone,
    },
    /// A fixed interval from the previous run.
    Every(Duration),
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |problem: String| ScheduleError { text: text.to_owned(), problem };
        let mut rest = text.trim();
        let mut zone = TimeZone::UTC;
        if let Some(prefixed) = rest.strip_prefix("CRON_TZ=").or_else(|| rest.strip_prefix("TZ=")) {
            let (name, pattern) = prefixed
                .split_once(char::is_whitespace)
                .ok_or_else(|| error("nothing follows the time zone".into()))?;
            zone = TimeZone::get(name).map_err(|e| error(format!("unknown time zone {name:?} ({e})")))?;
            rest = pattern.trim();
        }
        if let Some(interval) = rest.strip_prefix("@every") {
            let interval = parse_duration(interval.trim()).map_err(|e| error(e.to_string()))?;
            if interval < Duration::from_secs(1) {
                return Err(error("@every needs an interval of at least 1s".into()));
            }
            return Ok(Schedule::Every(interval));
        }
        let pattern = if rest.eq_ignore_ascii_case("@midnight") { "@daily" } else { rest };
        if !pattern.starts_with('@') && pattern.split_whitespace().count() != 5 {
            return Err(error(format!("{} fields, expected 5", pattern.split_whitespace().count())));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(pattern).map_err(|e| error(e.to_string()))?;
        Ok(Schedule::Cron { cron: Box::new(cron), zone })
    }
}

impl Schedule {
    /// The first time strictly after `after` at which the schedule fires.
    pub fn next_after(&self, after: Timestamp) -> Result<Timestamp, ScheduleError> {
        match self {
            Schedule::Every(interval) => {
                let span = jiff::SignedDuration::try_from(*interval).unwrap_or(jiff::SignedDuration::MAX);
                after
                    .checked_add(span)
                    .map_err(|e| ScheduleError { text: format!("@every {interval:?}"), problem: e.to_string() })
            }
            Schedule::Cron { cron, zone } => cron
                .find_next_occurrence(&after.to_zoned(zone.clone()), false)
                .map(|next| next.timestamp())
                .map_err(|e| ScheduleError { text: cron.to_string(), problem: e.to_string() }),
        }
    }

    /// Whether a backup is due at `now`, given the last one (or the schedule's creation): when the first
    /// firing time after it has passed. Missed firings are not caught up: one backup covers them all,
    /// and the next is computed from it.
    pub fn is_due(&self, last: Timestamp, now: Timestamp) -> Result<bool, ScheduleError> {
        Ok(self.next_after(last)? <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> Timestamp {
        schedule.parse::<Schedule>().unwrap().next_after(at(after)).unwrap()
    }

    #[test]
    fn five_field_cron_and_descriptors_fire_like_robfig_cron() {
        assert_eq!(next("0 3 * * *", "2026-11-28T03:00:00Z"), at("2026-11-29T03:00:00Z"));
        assert_eq!(next("*/15 * * * *", "2026-11-28T03:07:10Z"), at("2026-11-28T03:15:00Z"));
        assert_eq!(next("@daily", "2026-11-28T12:00:00Z"), at("2026-11-29T00:00:00Z"));
        assert_eq!(next("@midnight", "2026-11-28T12:00:00Z"), at("2026-11-29T00:00:00Z"));
        assert_eq!(next("@hourly", "2026-11-28T12:30:00Z"), at("2026-11-28T13:00:00Z"));
        assert_eq!(next("@weekly", "2026-11-28T12:00:00Z"), at("2026-11-29T00:00:00Z")); // a Sunday
        // Day of month OR day of week, as in vixie cron: the 1st, or any Monday.
        assert_eq!(next("0 0 1 * MON", "2026-11-28T00:00:00Z"), at("2026-11-30T00:00:00Z"));
    }

    #[test]
    fn every_counts_from_the_last_run() {
        assert_eq!(next("@every 5s", "2026-11-28T03:00:00Z"), at("2026-11-28T03:00:05Z"));
        assert_eq!(next("@every 1h30m", "2026-11-28T03:00:00Z"), at("2026-11-28T04:30:00Z"));
    }

    #[test]
    fn cron_tz_moves_wall_clock_times_into_the_zone() {
        // 03:00 in Berlin is 02:00 UTC in winter.
        assert_eq!(next("CRON_TZ=Europe/Berlin 0 3 * * *", "2026-11-28T12:00:00Z"), at("2026-11-29T02:00:00Z"));
        assert_eq!(next("TZ=UTC 0 3 * * *", "2026-11-28T12:00:00Z"), at("2026-11-29T03:00:00Z"));
    }

    #[test]
    fn missed_firings_are_not_caught_up() {
        let daily: Schedule = "@daily".parse().unwrap();
        // Last run a week ago: due now, once; after running now, the next is tomorrow.
        assert!(daily.is_due(at("2026-11-21T00:00:00Z"), at("2026-11-28T12:00:00Z")).unwrap());
        assert!(!daily.is_due(at("2026-11-28T12:00:00Z"), at("2026-11-28T23:59:59Z")).unwrap());
    }

    #[test]
    fn bad_schedules_name_the_problem_and_the_forms() {
        for bad in [
            "0 3 * *",
            "0 0 3 * * *",
            "61 * * * *",
            "@every",
            "@every 5x",
            "@every 0s",
            "CRON_TZ=Mars/Base 0 3 * * *",
            "@sometimes",
        ] {
            let message = bad.parse::<Schedule>().unwrap_err().to_string();
            assert!(message.contains("five cron fields"), "{bad}: {message}");
        }
    }
}
