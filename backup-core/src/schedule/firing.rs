//! Whether a schedule fires now: a pure decision from its expression, when it last fired or skipped, and
//! whether a backup of it is still running. Missed firings are never caught up.

use jiff::Timestamp;

use super::{Schedule, ScheduleError};

/// What a schedule should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    /// Create a backup now; the next firing is at `next`.
    Fire {
        /// The next firing after now.
        next: Timestamp,
    },
    /// A firing is due but a backup of this schedule is still New or InProgress: skip it (no overlap).
    Skip {
        /// The next firing after now.
        next: Timestamp,
    },
    /// Nothing is due before `next`.
    Wait {
        /// The next firing.
        next: Timestamp,
    },
}

/// What a schedule remembers of its past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// When it was created.
    pub created: Timestamp,
    /// When it last created a backup.
    pub last_backup: Option<Timestamp>,
    /// When it last skipped a firing.
    pub last_skipped: Option<Timestamp>,
    /// Skip the first firing: a new schedule then waits for its first cron time instead of firing at once.
    pub skip_immediately: bool,
}

/// Decides what `schedule` does at `now`. A schedule that never fired fires at once (Velero's behaviour)
/// unless `skip_immediately`; afterwards it fires at the first cron time after its last firing or skip, and
/// once only however many were missed.
pub fn decide(schedule: &Schedule, history: History, now: Timestamp, busy: bool) -> Result<Firing, ScheduleError> {
    let last = match (history.last_backup, history.last_skipped) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let due = match last {
        Some(last) => schedule.next_after(last)? <= now,
        None if history.skip_immediately => schedule.next_after(history.created)? <= now,
        None => true,
    };
    let next = schedule.next_after(now)?;
    Ok(match (due, busy) {
        (false, _) => Firing::Wait { next: schedule.next_after(last.unwrap_or(history.created))?.max(now) },
        (true, true) => Firing::Skip { next },
        (true, false) => Firing::Fire { next },
    })
}

/// The name of the backup a schedule creates at `at`: `<schedule>-<YYYYMMDDhhmmss>` (UTC).
pub fn backup_name(schedule: &str, at: Timestamp) -> String {
    format!("{schedule}-{}", at.strftime("%Y%m%d%H%M%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn history(last_backup: Option<&str>, skip_immediately: bool) -> History {
        History {
            created: at("2026-11-28T01:00:00Z"),
            last_backup: last_backup.map(at),
            last_skipped: None,
            skip_immediately,
        }
    }

    #[test]
    fn a_new_schedule_fires_at_once_unless_told_to_skip_immediately() {
        let daily: Schedule = "0 3 * * *".parse().unwrap();
        let now = at("2026-11-28T01:00:05Z");
        assert_eq!(
            decide(&daily, history(None, false), now, false).unwrap(),
            Firing::Fire { next: at("2026-11-28T03:00:00Z") }
        );
        assert_eq!(
            decide(&daily, history(None, true), now, false).unwrap(),
            Firing::Wait { next: at("2026-11-28T03:00:00Z") }
        );
    }

    #[test]
    fn missed_firings_are_not_caught_up() {
        let hourly: Schedule = "@every 1h".parse().unwrap();
        // Last backup a day ago: one firing now, the next an hour from now, not 23 in a row.
        let now = at("2026-11-28T12:00:00Z");
        let decision = decide(&hourly, history(Some("2026-11-27T12:00:00Z"), false), now, false).unwrap();
        assert_eq!(decision, Firing::Fire { next: at("2026-11-28T13:00:00Z") });
    }

    #[test]
    fn a_due_firing_is_skipped_while_a_backup_of_the_schedule_runs() {
        let every: Schedule = "@every 5s".parse().unwrap();
        let now = at("2026-11-28T12:00:10Z");
        let decision = decide(&every, history(Some("2026-11-28T12:00:00Z"), false), now, true).unwrap();
        assert_eq!(decision, Firing::Skip { next: at("2026-11-28T12:00:15Z") });
        let skipped = History { last_skipped: Some(now), ..history(Some("2026-11-28T12:00:00Z"), false) };
        assert_eq!(
            decide(&every, skipped, at("2026-11-28T12:00:12Z"), false).unwrap(),
            Firing::Wait { next: at("2026-11-28T12:00:15Z") }
        );
    }

    #[test]
    fn backups_are_named_after_the_schedule_and_the_utc_time() {
        assert_eq!(backup_name("nightly", at("2026-11-28T03:00:07Z")), "nightly-20261128030007");
    }
}
