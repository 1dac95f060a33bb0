//! Whether a Cairn server is running in a namespace, asked before the CLI creates objects only a server acts
//! on. Cairn's CRDs outlive an uninstalled server, so "the cluster serves cairn.dev" is not enough.
//!
//! The answer comes from the Lease `cairn-server` that servers elect their leader on: held and renewed
//! within twice its duration (plus a margin for clocks that disagree), a server runs. A server started with
//! `--leader-elect=false` keeps no Lease, and a Lease can look stale to a client whose clock is off; so when
//! the Lease does not settle it, the server is asked for its version (a ServerStatusRequest) and counts as
//! running if it answers within a few seconds.

use cairn_kube::errors::ErrorKind;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use cairn_api::server::SERVER_LEASE;

use super::{ClientError, ServerApi};

/// Added to twice the lease duration before a Lease counts as stale: clocks of the client and the server
/// may disagree by this much.
const CLOCK_MARGIN: Duration = Duration::from_secs(15);

/// How long a server is given to answer the status request when its Lease does not show it running.
pub(super) const STATUS_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the Lease `cairn-server` says about a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// Held by `holder` and renewed recently: a server runs.
    Held {
        /// The leading replica's identity.
        holder: String,
    },
    /// There is no Lease (never installed, or servers run with `--leader-elect=false`).
    Missing,
    /// Its holder gave it up when it stopped.
    Released,
    /// Its holder has not renewed it for longer than twice its duration.
    Stale {
        /// The replica that held it.
        holder: String,
        /// When it was last renewed, if it says.
        renewed: Option<Timestamp>,
    },
}

impl LeaseState {
    /// Reads `lease` (None: there is none) at `now`. No I/O.
    pub(crate) fn of(lease: Option<&Lease>, now: Timestamp) -> LeaseState {
        let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
            return if lease.is_some() { LeaseState::Released } else { LeaseState::Missing };
        };
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder.is_empty() {
            return LeaseState::Released;
        }
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        let window = SignedDuration::try_from(duration * 2 + CLOCK_MARGIN).unwrap_or(SignedDuration::MAX);
        match renewed {
            Some(renewed) if now.duration_since(renewed) <= window => LeaseState::Held { holder },
            _ => LeaseState::Stale { holder, renewed },
        }
    }

    /// Whether the Lease shows a running server.
    pub(crate) fn is_held(&self) -> bool {
        matches!(self, LeaseState::Held { .. })
    }

    /// The Lease's state as a clause for messages: `its Lease cairn-server is missing`, ....
    pub(crate) fn clause(&self) -> String {
        match self {
            LeaseState::Held { holder } => format!("its Lease {SERVER_LEASE} is held by {holder}"),
            LeaseState::Missing => format!("its Lease {SERVER_LEASE} is missing"),
            LeaseState::Released => format!("its Lease {SERVER_LEASE} was released by the last server to stop"),
            LeaseState::Stale { holder, renewed: Some(renewed) } => format!(
                "its Lease {SERVER_LEASE} is stale: {holder} last renewed it at {}",
                renewed.strftime("%Y-%m-%d %H:%M:%S UTC")
            ),
            LeaseState::Stale { holder, renewed: None } => {
                format!("its Lease {SERVER_LEASE} is stale: {holder} never renewed it")
            }
        }
    }
}

impl ServerApi {
    /// What the Lease `cairn-server` in the server's namespace says. A Lease this identity may not read
    /// counts as missing (the status request then decides).
    pub(crate) async fn lease_state(&self) -> Result<LeaseState, ClientError> {
        let api: Api<Lease> = Api::namespaced(self.client().clone(), self.namespace());
        match api.get_opt(SERVER_LEASE).await {
            Ok(lease) => Ok(LeaseState::of(lease.as_ref(), Timestamp::now())),
            Err(error) if ErrorKind::of(&error) == ErrorKind::Forbidden => Ok(LeaseState::Missing),
            Err(error) => Err(ClientError::api(
                format!("reading the Lease {SERVER_LEASE} in namespace {:?}", self.namespace()),
                &error,
            )),
        }
    }

    /// Succeeds when a server runs in the namespace: its Lease is held and fresh, or (no Lease, a stale one,
    /// or one this identity may not read) it answers a status request within [`STATUS_PROBE_TIMEOUT`].
    /// Otherwise [`ClientError::NotRunning`], or [`ClientError::NoNamespace`] when the namespace is missing.
    pub(crate) async fn check_server_running(&self) -> Result<(), ClientError> {
        let lease = self.lease_state().await?;
        if lease.is_held() {
            return Ok(());
        }
        match self.server_status(STATUS_PROBE_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(ClientError::NoServer { namespace, timeout }) => {
                Err(ClientError::NotRunning { namespace, lease: lease.clause(), waited: timeout })
            }
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime};

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn lease(holder: Option<&str>, renewed: Option<&str>, seconds: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: renewed.map(|t| MicroTime(at(t))),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn a_lease_renewed_within_twice_its_duration_and_a_margin_shows_a_running_server() {
        let now = at("2026-11-28T12:00:44Z");
        let fresh = lease(Some("cairn-a"), Some("2026-11-28T12:00:00Z"), 15);
        assert_eq!(LeaseState::of(Some(&fresh), now), LeaseState::Held { holder: "cairn-a".into() });
        let state = LeaseState::of(Some(&fresh), at("2026-11-28T12:00:46Z"));
        assert_eq!(state, LeaseState::Stale { holder: "cairn-a".into(), renewed: Some(at("2026-11-28T12:00:00Z")) });
        assert!(state.clause().contains("cairn-a last renewed it at 2026-11-28 12:00:00 UTC"), "{}", state.clause());
    }

    #[test]
    fn a_missing_released_or_never_renewed_lease_shows_no_server() {
        let now = at("2026-11-28T12:00:00Z");
        assert_eq!(LeaseState::of(None, now), LeaseState::Missing);
        assert_eq!(LeaseState::of(Some(&lease(None, Some("2026-11-28T12:00:00Z"), 15)), now), LeaseState::Released);
        assert_eq!(LeaseState::of(Some(&Lease::default()), now), LeaseState::Released);
        let never = LeaseState::of(Some(&lease(Some("cairn-a"), None, 15)), now);
        assert!(!never.is_held() && never.clause().contains("never renewed"), "{never:?}");
        assert!(LeaseState::Missing.clause().contains("Lease cairn-server is missing"));
    }

    #[test]
    fn the_staleness_window_follows_the_lease_duration() {
        let long = lease(Some("cairn-a"), Some("2026-11-28T12:00:00Z"), 60);
        assert!(LeaseState::of(Some(&long), at("2026-11-28T12:02:10Z")).is_held());
    }
}
