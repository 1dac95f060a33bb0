//! Leader election on a `coordination.k8s.io/v1` Lease, so that one `backup-server` replica acts at a time.
//!
//! The rules are client-go's: a candidate takes the Lease when nobody holds it, when it holds it already (a
//! restarted process keeps its identity), or when the holder has not renewed it for the holder's declared
//! lease duration. "Not renewed" is judged by how long the Lease's `resourceVersion` has stayed unchanged on
//! this process's own monotonic clock, never by comparing `renewTime` with the local wall clock, so clock
//! skew between nodes cannot hand the Lease to two holders. Every write is a replace guarded by the
//! `resourceVersion` that was read (or a create-only create), so two candidates racing for a free Lease
//! cannot both win: the loser gets a conflict and looks again.
//!
//! The holder renews every 2/15 of the lease duration and gives up leadership when it has not renewed for
//! 2/3 of it (2 s and 10 s for the default 15 s, as client-go's defaults), so it stops acting before any
//! standby may take over.
//!
//! Written on kube's `Api<Lease>` rather than the `kube-lease-manager` crate: that crate's standby sleeps
//! until the old lease's expiry even after the holder released it, so a release would not hand over at once,
//! and it judges expiry by the wall clock.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use crate::errors::describe;

/// How long a Lease stays held without renewal unless [`LeaderElection::lease_duration`] says otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Writes to the Lease that may be retried at once after a conflict when releasing it.
const RELEASE_ATTEMPTS: u32 = 3;

/// Why leader election stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API server forbade a request on the Lease; waiting will not change that.
    #[error(
        "cannot {action} the Lease {namespace}/{lease}: {reason}; allow the server's service account to get, \
         create and update leases.coordination.k8s.io in the namespace {namespace}"
    )]
    Forbidden {
        /// What was attempted: `read`, `create` or `update`.
        action: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        lease: String,
        /// The API server's answer.
        reason: String,
    },
    /// The API server rejected a request on the Lease for good: a missing namespace, an invalid name.
    #[error("cannot {action} the Lease {namespace}/{lease}: {reason}")]
    Rejected {
        /// What was attempted: `read`, `create` or `update`.
        action: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        lease: String,
        /// The API server's answer.
        reason: String,
    },
    /// Giving the Lease up failed; a standby takes over when the lease expires instead.
    #[error("could not release the Lease {namespace}/{lease}: {reason}; a standby takes over once it expires")]
    Release {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        lease: String,
        /// The API server's answer.
        reason: String,
    },
}

/// A candidate for leadership: one process's claim on one Lease.
#[derive(Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    namespace: String,
    lease: String,
    identity: String,
    timing: Timing,
}

impl std::fmt::Debug for LeaderElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElection")
            .field("namespace", &self.namespace)
            .field("lease", &self.lease)
            .field("identity", &self.identity)
            .field("timing", &self.timing)
            .finish()
    }
}

/// The periods of an election, all derived from the lease duration.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Timing {
    /// Whole seconds, as the Lease records them.
    lease_seconds: i32,
}

impl Timing {
    fn new(duration: Duration) -> Self {
        let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        Timing { lease_seconds: seconds.clamp(1, i32::MAX as u64) as i32 }
    }

    fn lease(self) -> Duration {
        Duration::from_secs(self.lease_seconds as u64)
    }

    /// How often the holder renews and a standby looks again.
    fn retry(self) -> Duration {
        self.lease() * 2 / 15
    }

    /// How long the holder may go without a renewal before it stops acting.
    fn renew_deadline(self) -> Duration {
        self.lease() * 2 / 3
    }
}

impl LeaderElection {
    /// A candidate named `identity` (unique per process, such as the pod's name) for the Lease `lease` in
    /// `namespace`, with the default lease duration of 15 s.
    pub fn new(client: Client, namespace: &str, lease: &str, identity: &str) -> Self {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            lease: lease.to_owned(),
            identity: identity.to_owned(),
            timing: Timing::new(DEFAULT_LEASE_DURATION),
        }
    }

    /// Sets how long the Lease stays held without renewal: a standby takes over that long after the holder
    /// stops renewing. Rounded up to whole seconds (the Lease records seconds), at least one.
    pub fn lease_duration(self, duration: Duration) -> Self {
        LeaderElection { timing: Timing::new(duration), ..self }
    }

    /// Waits until this process holds the Lease (creating it if absent, taking it over when its holder
    /// released it or stopped renewing), then keeps renewing it in the background.
    ///
    /// Errors the API server will keep answering (forbidden, missing namespace) end the wait; others are
    /// logged and retried.
    pub async fn acquire(self) -> Result<Leadership, LeaderError> {
        let mut observed = Observed::default();
        let mut waiting_for: Option<String> = None;
        let (held, written_at) = loop {
            let attempt = Instant::now();
            match self.try_acquire(&mut observed).await {
                Ok(Attempt::Held(lease)) => break (*lease, attempt),
                Ok(Attempt::Wait { holder }) => {
                    if waiting_for.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.lease, %holder, "waiting for the leader's Lease");
                        waiting_for = Some(holder);
                    }
                }
                Ok(Attempt::Lost) => {}
                Err(failure) => {
                    if let Some(error) = self.classify(failure.action, failure.error) {
                        return Err(error);
                    }
                }
            }
            tokio::time::sleep(self.timing.retry()).await;
        };
        tracing::info!(lease = %self.lease, namespace = %self.namespace, identity = %self.identity, "acquired leadership");
        Ok(Leadership::start(self, held, written_at))
    }

    /// One look at the Lease, and a claim on it when it is free.
    async fn try_acquire(&self, observed: &mut Observed) -> Result<Attempt, Failure> {
        let current = self.api.get_opt(&self.lease).await.map_err(Failure::on("read"))?;
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.lease.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec::default()),
            };
            let claimed = claimed(lease, &self.identity, self.timing, now());
            return match self.api.create(&PostParams::default(), &claimed).await {
                Ok(lease) => Ok(Attempt::Held(Box::new(lease))),
                Err(error) if is_conflict(&error) => Ok(Attempt::Lost),
                Err(error) => Err(Failure { action: "create", error }),
            };
        };
        let unchanged_for = observed.unchanged_for(&current, Instant::now());
        match claim(&current, &self.identity, unchanged_for) {
            Claim::Wait { holder } => Ok(Attempt::Wait { holder }),
            Claim::Take => {
                let claimed = claimed(current, &self.identity, self.timing, now());
                match self.api.replace(&self.lease, &PostParams::default(), &claimed).await {
                    Ok(lease) => Ok(Attempt::Held(Box::new(lease))),
                    // Another candidate wrote it, or deleted it, since it was read.
                    Err(error) if is_conflict(&error) || is_not_found(&error) => Ok(Attempt::Lost),
                    Err(error) => Err(Failure { action: "update", error }),
                }
            }
        }
    }

    /// The error that ends the election, or `None` (logged) when the request may succeed later.
    fn classify(&self, action: &'static str, error: kube::Error) -> Option<LeaderError> {
        let (namespace, lease, reason) = (self.namespace.clone(), self.lease.clone(), describe(&error));
        match &error {
            kube::Error::Api(status) if matches!(status.code, 401 | 403) => {
                Some(LeaderError::Forbidden { action, namespace, lease, reason })
            }
            kube::Error::Api(status) if matches!(status.code, 400 | 404 | 422) => {
                Some(LeaderError::Rejected { action, namespace, lease, reason })
            }
            _ => {
                tracing::warn!(lease = %self.lease, "cannot {action} the Lease, retrying: {reason}");
                None
            }
        }
    }
}

/// A request on the Lease that failed, and what it was.
struct Failure {
    action: &'static str,
    error: kube::Error,
}

impl Failure {
    fn on(action: &'static str) -> impl FnOnce(kube::Error) -> Failure {
        move |error| Failure { action, error }
    }
}

/// The result of one look at the Lease.
enum Attempt {
    /// This process holds it now.
    Held(Box<Lease>),
    /// Someone else holds it and renews it.
    Wait { holder: String },
    /// Another candidate wrote it first, or it changed since it was read; look again.
    Lost,
}

/// Held leadership: the Lease is renewed in the background until [`Leadership::release`], until it is
/// dropped (renewals stop and the Lease expires), or until leadership is lost.
#[derive(Debug)]
pub struct Leadership {
    namespace: String,
    lease: String,
    holding: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
    renewal: JoinHandle<Option<Held>>,
}

/// The Lease as last written by its holder, handed back by the renewal task when it stops.
#[derive(Debug)]
struct Held {
    election: LeaderElection,
    lease: Lease,
}

impl Leadership {
    /// Starts renewing `lease`, which this process wrote in a request sent at `written_at`.
    fn start(election: LeaderElection, lease: Lease, written_at: Instant) -> Self {
        let (holding_tx, holding) = watch::channel(true);
        let (stop, stop_rx) = oneshot::channel();
        let (namespace, lease_name) = (election.namespace.clone(), election.lease.clone());
        let renewal = tokio::spawn(keep_renewing(Held { election, lease }, written_at, stop_rx, holding_tx));
        Leadership { namespace, lease: lease_name, holding, stop, renewal }
    }

    /// Resolves when leadership is lost: renewals failed for 2/3 of the lease duration, or another holder
    /// took the Lease. The server then stops, so that it never acts without the Lease. Resolves at once when
    /// called again after that.
    pub async fn lost(&mut self) {
        // An error means the renewal task ended, which it does only after losing leadership.
        let _ = self.holding.wait_for(|holding| !holding).await;
    }

    /// Gives the Lease up at shutdown, clearing its holder so that a standby takes over at once. Does
    /// nothing when leadership was already lost.
    pub async fn release(self) -> Result<(), LeaderError> {
        let Leadership { namespace, lease, stop, renewal, .. } = self;
        let _ = stop.send(());
        // `None`: leadership was lost; an error: the renewal task panicked, so nothing is known to be held.
        let Ok(Some(held)) = renewal.await else { return Ok(()) };
        release(&held).await?;
        tracing::info!(%lease, %namespace, "released leadership");
        Ok(())
    }
}

/// Renews the Lease every retry period until stopped (handing the Lease back) or until leadership is lost
/// (reported on `holding`). `renewed_at` is when the write that took the Lease was sent: deadlines count
/// from the sending of a write, which is never later than when a standby sees it.
async fn keep_renewing(
    mut held: Held,
    mut renewed_at: Instant,
    mut stop: oneshot::Receiver<()>,
    holding: watch::Sender<bool>,
) -> Option<Held> {
    let timing = held.election.timing;
    let mut next = renewed_at + timing.retry();
    loop {
        tokio::select! {
            biased;
            // A send (release) or a drop of the sender (the Leadership was dropped) both stop renewals.
            _ = &mut stop => return Some(held),
            () = tokio::time::sleep_until(next) => {}
        }
        let deadline = renewed_at + timing.renew_deadline();
        let started = Instant::now();
        let reason = match tokio::time::timeout_at(deadline, renew(&held)).await {
            Ok(Ok(Renewal::Renewed(lease))) => {
                held.lease = lease;
                renewed_at = started;
                next = started + timing.retry();
                continue;
            }
            Ok(Ok(Renewal::Stale(lease))) => {
                held.lease = lease;
                next = started;
                continue;
            }
            Ok(Ok(Renewal::TakenBy(holder))) => format!("the Lease is now held by {holder}"),
            Ok(Err(error)) if Instant::now() < deadline => {
                tracing::warn!(lease = %held.election.lease, "renewing the Lease failed, retrying: {}", describe(&error));
                next = (Instant::now() + timing.retry()).min(deadline);
                continue;
            }
            Ok(Err(error)) => format!(
                "the Lease could not be renewed for {} s: {}",
                timing.renew_deadline().as_secs_f32(),
                describe(&error)
            ),
            Err(_) => format!(
                "the Lease could not be renewed for {} s: the API server did not answer in time",
                timing.renew_deadline().as_secs_f32()
            ),
        };
        tracing::warn!(lease = %held.election.lease, namespace = %held.election.namespace, "lost leadership: {reason}");
        let _ = holding.send(false);
        return None;
    }
}

/// The result of one renewal.
enum Renewal {
    /// The Lease carries a fresh `renewTime`.
    Renewed(Lease),
    /// The Lease changed but is still ours: renew again from this version.
    Stale(Lease),
    /// Someone else holds the Lease, or nobody (it was deleted or cleared).
    TakenBy(String),
}

async fn renew(held: &Held) -> Result<Renewal, kube::Error> {
    let election = &held.election;
    let renewed = claimed(held.lease.clone(), &election.identity, election.timing, now());
    match election.api.replace(&election.lease, &PostParams::default(), &renewed).await {
        Ok(lease) => Ok(Renewal::Renewed(lease)),
        Err(error) if is_conflict(&error) || is_not_found(&error) => {
            let Some(current) = election.api.get_opt(&election.lease).await? else {
                return Ok(Renewal::TakenBy("nobody: it was deleted".into()));
            };
            match holder(&current) {
                Some(holder) if holder == election.identity => Ok(Renewal::Stale(current)),
                Some(holder) => Ok(Renewal::TakenBy(holder.to_owned())),
                None => Ok(Renewal::TakenBy("nobody: its holder was cleared".into())),
            }
        }
        Err(error) => Err(error),
    }
}

/// Clears the holder of a Lease this process still holds, retrying after conflicts with its own writes.
async fn release(held: &Held) -> Result<(), LeaderError> {
    let election = &held.election;
    let failed = |error: kube::Error| LeaderError::Release {
        namespace: election.namespace.clone(),
        lease: election.lease.clone(),
        reason: describe(&error),
    };
    let mut current = held.lease.clone();
    for _ in 0..RELEASE_ATTEMPTS {
        if holder(&current) != Some(election.identity.as_str()) {
            return Ok(());
        }
        match election.api.replace(&election.lease, &PostParams::default(), &released(current, now())).await {
            Ok(_) => return Ok(()),
            Err(error) if is_conflict(&error) => match election.api.get_opt(&election.lease).await.map_err(failed)? {
                Some(lease) => current = lease,
                None => return Ok(()),
            },
            Err(error) => return Err(failed(error)),
        }
    }
    Err(LeaderError::Release {
        namespace: election.namespace.clone(),
        lease: election.lease.clone(),
        reason: format!("it kept changing during {RELEASE_ATTEMPTS} attempts"),
    })
}

/// What a candidate does about a Lease it has seen.
#[derive(Debug, PartialEq)]
enum Claim {
    /// Nobody holds it, this process does already, or its holder stopped renewing it.
    Take,
    /// `holder` holds it and renewed it within its lease duration.
    Wait { holder: String },
}

/// Decides on `lease` as seen by `identity`, which has seen it unchanged for `unchanged_for`.
fn claim(lease: &Lease, identity: &str, unchanged_for: Duration) -> Claim {
    let Some(current) = holder(lease) else { return Claim::Take };
    if current == identity {
        return Claim::Take;
    }
    let declared = lease.spec.as_ref().and_then(|spec| spec.lease_duration_seconds).unwrap_or(0);
    if unchanged_for >= Duration::from_secs(declared.max(0) as u64) {
        Claim::Take
    } else {
        Claim::Wait { holder: current.to_owned() }
    }
}

/// `lease` held and renewed by `identity` at `at`; a change of holder counts a transition.
fn claimed(mut lease: Lease, identity: &str, timing: Timing, at: jiff::Timestamp) -> Lease {
    let taking_over = holder(&lease) != Some(identity);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if taking_over {
        spec.holder_identity = Some(identity.to_owned());
        spec.acquire_time = Some(MicroTime(at));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(at));
    spec.lease_duration_seconds = Some(timing.lease_seconds);
    lease
}

/// `lease` with no holder, as a holder leaves it at shutdown (client-go's shape: one-second duration).
fn released(mut lease: Lease, at: jiff::Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.acquire_time = None;
    spec.renew_time = Some(MicroTime(at));
    spec.lease_duration_seconds = Some(1);
    lease
}

/// The Lease's holder, if it names one.
fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref().filter(|holder| !holder.is_empty())
}

/// Since when this process has seen a Lease at one `resourceVersion`, on its monotonic clock.
#[derive(Debug, Default)]
struct Observed {
    resource_version: Option<String>,
    since: Option<Instant>,
}

impl Observed {
    /// How long `lease` has been seen unchanged as of `now` (zero when it just changed).
    fn unchanged_for(&mut self, lease: &Lease, now: Instant) -> Duration {
        match self.since {
            Some(since) if self.resource_version == lease.metadata.resource_version => now.duration_since(since),
            _ => {
                self.resource_version = lease.metadata.resource_version.clone();
                self.since = Some(now);
                Duration::ZERO
            }
        }
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Eight random hex digits, to make a candidate's identity unique when only a host name is known.
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, seconds: i32, resource_version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta { resource_version: Some(resource_version.into()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(seconds),
                lease_transitions: Some(4),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_without_holder_is_taken() {
        assert_eq!(claim(&lease(None, 15, "1"), "b", Duration::ZERO), Claim::Take);
        assert_eq!(claim(&lease(Some(""), 15, "1"), "b", Duration::ZERO), Claim::Take);
    }

    #[test]
    fn a_lease_held_by_this_identity_is_taken_back_at_once() {
        assert_eq!(claim(&lease(Some("b"), 15, "1"), "b", Duration::ZERO), Claim::Take);
    }

    #[test]
    fn a_renewed_lease_of_another_holder_is_waited_for_until_its_duration_passes_unchanged() {
        let held = lease(Some("a"), 15, "1");
        assert_eq!(claim(&held, "b", Duration::from_secs(14)), Claim::Wait { holder: "a".into() });
        assert_eq!(claim(&held, "b", Duration::from_secs(15)), Claim::Take);
    }

    #[test]
    fn the_unchanged_time_restarts_whenever_the_resource_version_changes() {
        let mut observed = Observed::default();
        let start = Instant::now();
        assert_eq!(observed.unchanged_for(&lease(Some("a"), 15, "1"), start), Duration::ZERO);
        let later = start + Duration::from_secs(5);
        assert_eq!(observed.unchanged_for(&lease(Some("a"), 15, "1"), later), Duration::from_secs(5));
        assert_eq!(observed.unchanged_for(&lease(Some("a"), 15, "2"), later), Duration::ZERO);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let at = jiff::Timestamp::UNIX_EPOCH;
        let timing = Timing::new(Duration::from_secs(15));
        let taken = claimed(lease(Some("a"), 30, "1"), "b", timing, at);
        let spec = taken.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!((spec.lease_transitions, spec.lease_duration_seconds), (Some(5), Some(15)));
        assert_eq!(spec.acquire_time, Some(MicroTime(at)));
        let renewed = claimed(taken, "b", timing, at + Duration::from_secs(2));
        let spec = renewed.spec.unwrap();
        assert_eq!((spec.lease_transitions, spec.acquire_time), (Some(5), Some(MicroTime(at))));
        assert_eq!(spec.renew_time, Some(MicroTime(at + Duration::from_secs(2))));
    }

    #[test]
    fn a_released_lease_has_no_holder_and_keeps_its_transitions() {
        let spec = released(lease(Some("a"), 15, "1"), jiff::Timestamp::UNIX_EPOCH).spec.unwrap();
        assert_eq!((spec.holder_identity, spec.lease_transitions), (None, Some(4)));
        assert_eq!(spec.lease_duration_seconds, Some(1));
    }

    #[test]
    fn the_holder_renews_often_and_gives_up_before_a_standby_may_take_over() {
        let timing = Timing::new(DEFAULT_LEASE_DURATION);
        assert_eq!((timing.retry(), timing.renew_deadline()), (Duration::from_secs(2), Duration::from_secs(10)));
        assert_eq!(Timing::new(Duration::from_millis(1500)).lease_seconds, 2);
        assert_eq!(Timing::new(Duration::ZERO).lease_seconds, 1);
    }
}
