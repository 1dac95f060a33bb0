//! Image updates of Deployments, DaemonSets and StatefulSets with a recorded cause: [`target`] names the
//! workload (`deploy/web`), [`set`] changes container images and records why in `kubernetes.io/change-cause`
//! (what `kubectl set image --record` did before `--record` went away), [`history`] lists the revisions the
//! controllers keep (ReplicaSets for Deployments, ControllerRevisions for the others) with their images,
//! cause and time, and [`rollback`] returns to one of them and waits for the rollout.

pub mod history;
pub mod rollback;
pub mod set;
pub mod target;

/// The annotation that records why a workload changed (kubectl's).
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
