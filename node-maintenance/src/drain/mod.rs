//! Draining nodes: [`mod@plan`] decides, without I/O, what happens to every pod on a node and what stands in the
//! way, and [`capacity`] whether the nodes that stay can take the moved pods; [`execute`] reads the cluster,
//! refuses or cordons, moves the pods and waits until they are gone, and [`many`] drains several nodes at
//! once. The same plans are what `--dry-run` prints.

pub mod capacity;
pub mod execute;
pub mod many;
pub mod plan;

pub use execute::{DrainError, DrainEvent, drain, read_plans};
pub use many::{NodeObserver, drain_many, refusals};
pub use plan::{Action, DrainOptions, DrainPlan, Guard, Hold, PodStep, SkipReason, plan};
