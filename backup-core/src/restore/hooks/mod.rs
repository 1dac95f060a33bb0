//! Restore hooks, with Velero's meaning: `init` hooks put init containers before a restored pod's own (from
//! the archived pod's annotations, or the Restore's `spec.hooks` entries that select it by its archived
//! namespace, resource type and labels), so they run before the application starts; `exec` hooks run a
//! command in a restored pod's container once it runs (or, with `waitForReady`, once the pod is Ready), after
//! every object has been applied, the restore waiting for them. A pod's annotations for a kind of hook replace
//! the spec's. Any hook failure is an error of the restore (PartiallyFailed) naming the hook; `onError: Fail`
//! also stops the hooks not run yet, `Continue` (the default) goes on. Only pods the restore created or
//! updated get exec hooks; a dry run shows the init containers and runs nothing.

mod exec;
mod resolve;

pub(crate) use exec::{PodExecHooks, run_exec_hooks};
pub(crate) use resolve::{
    ExecPlan, PodRestoreHooks, RestoreHookEntry, compile, pod_restore_hooks, prepend_init_containers,
};
