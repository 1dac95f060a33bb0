//! Backup hooks: commands run in the containers of selected pods (their annotations, or the Backup's
//! `spec.hooks`) around the backup. Every `pre` hook runs before the backup lists anything, so what a hook
//! writes (a dump in a ConfigMap or a volume, a flushed file) is in the backup; every `post` hook runs once
//! the whole backup has been read, whatever its outcome, so what a pre hook paused is resumed. A failing
//! hook with `onError: Fail` is an error of the backup (PartiallyFailed) and, for a pre hook, leaves its pod
//! out of the backup and its post hooks unrun, as Velero does; with `Continue` it is a warning. Pods that are
//! not running are skipped with a warning. Each hook's exit code, duration and last lines of output go to the
//! backup's log and results. Hooks run one at a time, in the order the pods are listed.

mod resolve;
mod run;

pub use resolve::HookPhase;
pub(crate) use resolve::{HookEntry, check_container, command_of, compile, first_container, on_error_of, timeout_of};
pub use run::{HookOutcome, HookRun};
pub(crate) use run::{hook_pods, run_phase};
