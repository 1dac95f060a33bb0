//! Draining a node: [`plan`] decides, without I/O, what happens to every pod on it and what stands in the
//! way; [`execute`] reads the cluster, refuses or cordons, moves the pods and waits until they are gone. The
//! same plan is what `--dry-run` prints.

pub mod execute;
pub mod plan;

pub use execute::{DrainError, DrainEvent, drain, read_plan};
pub use plan::{Action, DrainOptions, DrainPlan, Guard, Hold, PodStep, SkipReason, plan};
