//! Draining several nodes: nothing changes when any plan is refused; otherwise up to `concurrency` nodes
//! drain at once, each reporting to its own observer, and a node that fails does not stop the others.
//! Disruption budgets hold across nodes because the API server grants each eviction against a budget's
//! allowance at that moment.

use futures::StreamExt;
use kube::Client;

use super::{DrainError, DrainEvent, DrainOptions, DrainPlan, drain};

/// What hears one node's drain.
pub trait NodeObserver: Sync {
    /// A step of the drain, as it happens.
    fn event(&self, event: DrainEvent);
    /// The drain ended so.
    fn finished(&self, outcome: &Result<DrainPlan, DrainError>);
}

/// The refusals of `plans`, one paragraph per refused node, or None when every plan may go ahead.
pub fn refusals(plans: &[DrainPlan]) -> Option<String> {
    let refusals: Vec<String> =
        plans.iter().filter_map(|p| p.refusal().map(|reasons| format!("node {}:\n{reasons}", p.node))).collect();
    (!refusals.is_empty()).then(|| format!("cannot drain, and nothing was changed:\n{}", refusals.join("\n")))
}

/// Drains the nodes of `plans`, `concurrency` at a time, each heard by the observer `observe` gives for its
/// plan; returns each node's outcome, in the order they ended. Call [`refusals`] first: a refused plan is
/// refused again here, but only once the nodes before it have been drained.
pub async fn drain_many<'p, O: NodeObserver>(
    client: &Client,
    plans: &'p [DrainPlan],
    options: &DrainOptions,
    concurrency: usize,
    observe: impl Fn(&'p DrainPlan) -> O,
) -> Vec<(String, Result<DrainPlan, DrainError>)> {
    // The futures are made first, so that the stream holds no closure: a stream of a closure's futures is
    // not Send for the compiler when it is awaited in a spawned task.
    let drains: Vec<_> = plans
        .iter()
        .map(|plan| {
            let observer = observe(plan);
            async move {
                let outcome = drain(client, plan, options, &|event| observer.event(event)).await;
                observer.finished(&outcome);
                (plan.node.clone(), outcome)
            }
        })
        .collect();
    futures::stream::iter(drains).buffer_unordered(concurrency.max(1)).collect().await
}
