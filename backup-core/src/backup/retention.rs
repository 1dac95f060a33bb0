//! TTL garbage collection, decided: whether a Backup object is due for deletion, and what keeps an expired
//! one (its location missing, unreachable or read-only) with the `cairn.dev/gc-failure` value naming why.
//! Pure: the server reads the objects and locations, this decides.

use std::time::Duration;

use jiff::Timestamp;

use cairn_kube::duration::{DurationError, parse_duration};

use cairn_api::{BackupPhase, labels};

/// The TTL a backup gets: its own, or `default` when it names none or zero (Velero's rule: a TTL of 0
/// means the server's default, never "expire at once"). The CLI and the server both decide with this.
pub fn effective_ttl(ttl: &str, default: &str) -> Result<Duration, DurationError> {
    let own = if ttl.trim().is_empty() { Duration::ZERO } else { parse_duration(ttl)? };
    if own.is_zero() { parse_duration(default) } else { Ok(own) }
}

/// What garbage collection found of a backup's location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationState {
    /// No BackupStorageLocation of that name.
    Missing,
    /// It exists but cannot be opened or reached.
    Unreachable,
    /// It is ReadOnly: nothing may be deleted from it.
    ReadOnly,
    /// Deletions may proceed.
    Writable,
}

/// Whether a backup with this expiration and phase is due for collection at `now`. Running backups never
/// are; Deleting ones are (a deletion that failed midway is tried again).
pub fn is_due(expiration: Option<Timestamp>, phase: BackupPhase, now: Timestamp) -> bool {
    expiration.is_some_and(|expiration| expiration <= now) && !phase.is_active()
}

/// The `cairn.dev/gc-failure` value that keeps a due backup, or `None` when it is to be deleted.
pub fn gc_failure(location: LocationState) -> Option<&'static str> {
    match location {
        LocationState::Missing => Some(labels::GC_LOCATION_NOT_FOUND),
        LocationState::Unreachable => Some(labels::GC_LOCATION_UNREACHABLE),
        LocationState::ReadOnly => Some(labels::GC_LOCATION_READ_ONLY),
        LocationState::Writable => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_or_missing_ttl_takes_the_default() {
        for zero in ["", "0", "0s", "0h0m0s"] {
            assert_eq!(effective_ttl(zero, "72h").unwrap(), Duration::from_secs(72 * 3600), "{zero:?}");
        }
        assert_eq!(effective_ttl("1h", "72h").unwrap(), Duration::from_secs(3600));
        assert!(effective_ttl("99999999h", "72h").is_err());
    }

    #[test]
    fn only_finished_expired_backups_are_due() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let past = Some("2026-11-28T11:59:59Z".parse().unwrap());
        let future = Some("2026-11-28T12:00:01Z".parse().unwrap());
        assert!(is_due(past, BackupPhase::Completed, now));
        assert!(is_due(past, BackupPhase::Failed, now));
        assert!(is_due(past, BackupPhase::Deleting, now), "a failed deletion is retried");
        assert!(!is_due(past, BackupPhase::InProgress, now));
        assert!(!is_due(past, BackupPhase::New, now));
        assert!(!is_due(future, BackupPhase::Completed, now));
        assert!(!is_due(None, BackupPhase::Completed, now));
    }

    #[test]
    fn expired_backups_are_kept_with_the_reason_when_their_location_cannot_take_a_deletion() {
        assert_eq!(gc_failure(LocationState::Missing), Some("BSLNotFound"));
        assert_eq!(gc_failure(LocationState::Unreachable), Some("BSLCannotGet"));
        assert_eq!(gc_failure(LocationState::ReadOnly), Some("BSLReadOnly"));
        assert_eq!(gc_failure(LocationState::Writable), None);
    }
}
