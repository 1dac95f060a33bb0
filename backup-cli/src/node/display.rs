//! How drains show their progress. One node at a time: kubectl's lines (`node/n1 cordoned`, `evicting pod
//! shop/web-1`, `pod/web-1 evicted`), on stdout or, when stdout holds a JSON or YAML report, on stderr. Several
//! nodes at once: on a terminal, one live line per node (pods gone out of pods to move, and what holds the
//! drain up), with kubectl's lines above them; elsewhere the same lines, each opened by `[node]`.

use std::{io::IsTerminal, sync::Mutex, time::Duration};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use node_maintenance::{
    cordon::CordonOutcome,
    drain::{Action, DrainError, DrainEvent, DrainPlan, NodeObserver},
};

use crate::output::write_out;

/// Where the lines of all drains go.
pub(super) struct DrainDisplay {
    live: Option<MultiProgress>,
    to_stderr: bool,
    prefixed: bool,
}

impl DrainDisplay {
    /// A display for drains `concurrency` at a time; progress on stderr when `to_stderr`.
    pub(super) fn new(concurrency: usize, to_stderr: bool) -> DrainDisplay {
        let several = concurrency > 1;
        let live = (several && std::io::stderr().is_terminal()).then(MultiProgress::new);
        DrainDisplay { live, to_stderr, prefixed: several }
    }

    /// The line of `node`'s drain, which moves `moving` pods.
    pub(super) fn node(&self, node: &str, moving: usize) -> NodeLine<'_> {
        let bar = self.live.as_ref().map(|live| {
            let bar = live.add(ProgressBar::new(moving as u64));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {pos}/{len} pods gone {msg} [{elapsed}]")
                    .expect("a valid template"),
            );
            bar.set_prefix(node.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        NodeLine { display: self, node: node.to_owned(), bar, held: Mutex::new(None) }
    }

    /// Prints one of kubectl's lines (above the live lines on a terminal). A reader that went away does not
    /// stop a drain halfway: the line is then dropped.
    fn line(&self, node: &str, line: &str) {
        let line = if self.prefixed { format!("[{node}] {line}") } else { line.to_owned() };
        if let Some(live) = &self.live {
            let _ = live.println(line);
        } else if self.to_stderr {
            eprintln!("{line}");
        } else {
            let _ = write_out(&format!("{line}\n"));
        }
    }
}

/// One node's drain on the display.
pub(super) struct NodeLine<'a> {
    display: &'a DrainDisplay,
    node: String,
    bar: Option<ProgressBar>,
    held: Mutex<Option<String>>,
}

impl NodeLine<'_> {
    /// Shows what the drain reports. A pod held up is said once, and again only when the reason changes.
    pub(super) fn event(&self, event: DrainEvent) {
        let node = &self.node;
        let line = match event {
            DrainEvent::Cordoned(CordonOutcome::Changed) => format!("node/{node} cordoned"),
            DrainEvent::Cordoned(CordonOutcome::Unchanged) => format!("node/{node} already cordoned"),
            DrainEvent::Warning(text) => {
                eprintln!("Warning: {text}");
                return;
            }
            DrainEvent::Moving(pod, Action::Delete) => format!("deleting pod {pod}"),
            DrainEvent::Moving(pod, _) => format!("evicting pod {pod}"),
            DrainEvent::HeldUp(pod, reason) => {
                let line = format!("pod {pod} cannot be evicted yet: {reason}; trying again every 5 s");
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("(waiting: {reason})"));
                }
                let mut held = self.held.lock().expect("held lock");
                if held.as_deref() == Some(line.as_str()) {
                    return;
                }
                *held = Some(line.clone());
                line
            }
            DrainEvent::Accepted(_) => return,
            DrainEvent::Gone(pod, action) => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                    bar.set_message("");
                }
                let word = if action == Action::Delete { "deleted" } else { "evicted" };
                format!("pod/{} {word}", pod.name)
            }
        };
        self.display.line(node, &line);
    }
}

impl NodeObserver for NodeLine<'_> {
    fn event(&self, event: DrainEvent) {
        NodeLine::event(self, event);
    }

    /// Ends the line: `node/NAME drained`, or the reason it was not.
    fn finished(&self, outcome: &Result<DrainPlan, DrainError>) {
        let line = match outcome {
            Ok(_) => format!("node/{} drained", self.node),
            Err(error) => format!("node/{} not drained: {}", self.node, cairn_kube::cause::chain_text(error)),
        };
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.display.line(&self.node, &line);
    }
}
