//! Leader election against the real API server: one holder per Lease, hand-over on release and on expiry,
//! and a holder that notices when the Lease is taken from it.

use std::time::Duration;

use cairn_kube::leader::{LeaderElection, Leadership};
use cairn_tests::TestEnv;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, api::PostParams};
use tokio::{task::JoinHandle, time::Instant};

const LEASE: &str = "cairn-leader";

/// Short enough to keep the tests quick, long enough for renewals to be observed.
const LEASE_DURATION: Duration = Duration::from_secs(2);

fn elector(client: &Client, namespace: &str, identity: &str) -> LeaderElection {
    LeaderElection::new(client.clone(), namespace, LEASE, identity).lease_duration(LEASE_DURATION)
}

fn candidate(client: &Client, namespace: &str, identity: &str) -> JoinHandle<Leadership> {
    let election = elector(client, namespace, identity);
    tokio::spawn(async move { election.acquire().await.expect("the election runs") })
}

async fn holder(client: &Client, namespace: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace).get(LEASE).await.unwrap();
    lease.spec.and_then(|spec| spec.holder_identity)
}

/// Awaits `task` for at most `limit`.
async fn within(limit: Duration, task: &mut JoinHandle<Leadership>, what: &str) -> Leadership {
    tokio::time::timeout(limit, task).await.unwrap_or_else(|_| panic!("{what} within {limit:?}")).unwrap()
}

#[tokio::test]
async fn only_one_candidate_leads_until_it_releases_the_lease() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("leader-release").await;
    let mut first = candidate(&client, &namespace, "first");
    let mut second = candidate(&client, &namespace, "second");

    let (leader, leader_name, mut standby, standby_name) = tokio::select! {
        leader = &mut first => (leader.unwrap(), "first", second, "second"),
        leader = &mut second => (leader.unwrap(), "second", first, "first"),
    };
    assert_eq!(holder(&client, &namespace).await.as_deref(), Some(leader_name));

    // Longer than the lease duration: only renewals keep the standby out.
    let waited = tokio::time::timeout(LEASE_DURATION + Duration::from_secs(1), &mut standby).await;
    assert!(waited.is_err(), "the standby acquired a Lease that its holder renews");
    assert_eq!(holder(&client, &namespace).await.as_deref(), Some(leader_name));

    // Had the release left the holder in place, the standby would wait a lease duration from the release.
    leader.release().await.unwrap();
    let standby =
        within(LEASE_DURATION, &mut standby, "the standby takes over a released Lease before it expires").await;
    assert_eq!(holder(&client, &namespace).await.as_deref(), Some(standby_name));
    standby.release().await.unwrap();
    assert_eq!(holder(&client, &namespace).await, None);
}

#[tokio::test]
async fn a_standby_takes_over_once_the_holder_stops_renewing_for_the_lease_duration() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("leader-expiry").await;
    let leader = elector(&client, &namespace, "crashed").acquire().await.unwrap();
    let mut standby = candidate(&client, &namespace, "standby");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Dropping the leadership stops renewals without releasing, as a crashed process would.
    drop(leader);
    let stopped = Instant::now();
    let standby = within(LEASE_DURATION * 2, &mut standby, "the standby takes over an expired Lease").await;
    // The standby counts from the last renewal it saw, at most one renewal period before the stop.
    assert!(stopped.elapsed() >= LEASE_DURATION * 3 / 4, "took over after {:?}", stopped.elapsed());
    assert_eq!(holder(&client, &namespace).await.as_deref(), Some("standby"));
    standby.release().await.unwrap();
}

#[tokio::test]
async fn the_holder_loses_leadership_when_another_holder_takes_the_lease() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("leader-taken").await;
    let mut leadership = elector(&client, &namespace, "holder").acquire().await.unwrap();

    let leases = Api::<Lease>::namespaced(client.clone(), &namespace);
    let mut lease = leases.get(LEASE).await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    leases.replace(LEASE, &PostParams::default(), &lease).await.unwrap();

    tokio::time::timeout(LEASE_DURATION, leadership.lost()).await.expect("the holder notices the Lease was taken");
    leadership.lost().await;
    leadership.release().await.unwrap();
    assert_eq!(holder(&client, &namespace).await.as_deref(), Some("intruder"), "release cleared another holder");
}
