//! `cairn node drain --server`: the drain handed to the Cairn server as a NodeMaintenance object (refused when
//! no server runs), so that it goes on without this terminal, then followed: each node's and pod's progress in
//! kubectl's words as the server writes it, and an exit status that is 0 only when every node is drained. The
//! following ends early when no server has run for 30 s; the drain resumes with the next server.

use std::{collections::BTreeMap, time::Duration};

use anyhow::bail;
use cairn_api::{DeadlineAction, DrainSpec, MaintenancePhase, NodeMaintenance, NodeMaintenanceSpec};
use kube::{Client, ResourceExt, api::ObjectMeta};

use crate::{
    client::{ServerApi, serves_cairn_api},
    output::{OutputFormat, printable, write_out},
};

/// What `--server` adds to a drain.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerFlags {
    /// Have the Cairn server drain: a NodeMaintenance object in the server's namespace, carried out even when
    /// this terminal goes away (deleting the object stops the drain and uncordons the nodes).
    #[arg(long)]
    server: bool,
    /// With --server: why the nodes are drained, kept on the object.
    #[arg(long, requires = "server")]
    reason: Option<String>,
    /// With --server: how long the drain may take (a Go duration such as 1h); see --deadline-action.
    #[arg(long, requires = "server")]
    deadline: Option<String>,
    /// With --server: at the deadline, stop and uncordon the nodes (uncordon), or delete the pods still there
    /// without consulting their disruption budgets (delete).
    #[arg(long, requires = "deadline", value_enum, default_value_t = DeadlineArg::Uncordon)]
    deadline_action: DeadlineArg,
    /// With --server: create the object and return at once, without following the drain.
    #[arg(long, requires = "server")]
    no_wait: bool,
}

/// `--deadline-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DeadlineArg {
    Uncordon,
    Delete,
}

impl ServerFlags {
    /// Whether the drain goes to the server.
    pub(super) fn wanted(&self) -> bool {
        self.server
    }
}

/// Creates the NodeMaintenance for `nodes` and, unless --no-wait, follows it to its end.
pub(super) async fn drain(
    client: &Client,
    namespace: &str,
    nodes: Vec<String>,
    spec: DrainSpec,
    concurrency: u16,
    flags: &ServerFlags,
    output: OutputFormat,
) -> anyhow::Result<bool> {
    if let Some(deadline) = &flags.deadline {
        cairn_kube::duration::parse_duration(deadline).map_err(|e| anyhow::anyhow!("invalid --deadline: {e}"))?;
    }
    if !serves_cairn_api(client).await? {
        bail!(
            "this cluster has no Cairn server (it does not serve cairn.dev): install one with `cairn install`, or drain without --server"
        );
    }
    // A server installed before NodeMaintenance existed serves cairn.dev without it.
    let maintenances: kube::Api<NodeMaintenance> = kube::Api::namespaced(client.clone(), namespace);
    if let Err(error) = maintenances.list(&kube::api::ListParams::default().limit(1)).await
        && cairn_kube::errors::is_not_found(&error)
    {
        bail!(
            "the Cairn server's CRDs predate NodeMaintenance (the cluster does not serve nodemaintenances.cairn.dev): upgrade it with `cairn install`, or drain without --server"
        );
    }
    let object = maintenance_object(nodes, spec, concurrency, flags);
    let server = ServerApi::new(client.clone(), namespace);
    server.check_server_running().await?;
    let created = server.create(&object).await?;
    let name = created.name_any();
    eprintln!(
        "NodeMaintenance {name} created in namespace {namespace}: the server drains. Interrupting this command \
         stops following, not the drain; `kubectl delete nodemaintenance {name} -n {namespace}` stops it and \
         uncordons the nodes."
    );
    if flags.no_wait {
        output.print(&printable(created), |_| format!("nodemaintenance/{name} created\n"))?;
        return Ok(true);
    }
    let mut shown = Shown::default();
    let following = server.follow::<NodeMaintenance>(&name, Duration::from_secs(2), None, |m| {
        shown.show(m, output != OutputFormat::Table);
        m.phase().is_final()
    });
    // A server that stops for good ends the waiting, not the drain: the next server resumes it.
    let finished = tokio::select! {
        finished = following => finished?,
        stopped = crate::follow::server_stopped(&server) => {
            bail!("{stopped}; NodeMaintenance {name} stays and its drain resumes when a server runs again")
        }
    };
    let status = finished.status.clone().unwrap_or_default();
    let phase = finished.phase();
    if output != OutputFormat::Table {
        output.print(&printable(finished), |_| String::new())?;
    } else {
        let mut text = format!("nodemaintenance/{name}: {}\n", phase.as_str());
        for line in status.message.iter().chain(status.last_error.iter()) {
            text.push_str(&format!("{line}\n"));
        }
        write_out(&text)?;
    }
    if phase != MaintenancePhase::Drained {
        bail!(
            "node maintenance {name} ended {}: {}",
            phase.as_str(),
            status.last_error.or(status.message).unwrap_or_default()
        );
    }
    Ok(true)
}

/// The NodeMaintenance the flags ask for, named after the first node.
fn maintenance_object(nodes: Vec<String>, spec: DrainSpec, concurrency: u16, flags: &ServerFlags) -> NodeMaintenance {
    let first = nodes.first().cloned().unwrap_or_default();
    NodeMaintenance {
        metadata: ObjectMeta {
            generate_name: Some(format!("drain-{}-", cairn_kube::names::label_value(&first).trim_end_matches('-'))),
            ..ObjectMeta::default()
        },
        spec: NodeMaintenanceSpec {
            reason: flags.reason.clone().unwrap_or_default(),
            nodes,
            drain: spec,
            concurrency: Some(concurrency),
            deadline: flags.deadline.clone(),
            deadline_action: match flags.deadline_action {
                DeadlineArg::Uncordon => DeadlineAction::Uncordon,
                DeadlineArg::Delete => DeadlineAction::Delete,
            },
        },
        status: None,
    }
}

/// What was printed already: each node's phase, each pod's state and blocker.
#[derive(Default)]
struct Shown {
    nodes: BTreeMap<String, String>,
    pods: BTreeMap<(String, String), (String, Option<String>)>,
    message: Option<String>,
}

impl Shown {
    /// Prints what changed since the last look, in kubectl's words; on stderr when stdout holds a report.
    fn show(&mut self, maintenance: &NodeMaintenance, to_stderr: bool) {
        let Some(status) = &maintenance.status else { return };
        let mut lines = Vec::new();
        if status.message != self.message {
            self.message.clone_from(&status.message);
            lines.extend(status.message.clone());
        }
        for node in &status.nodes {
            for pod in &node.pods {
                let key = (node.name.clone(), format!("{}/{}", pod.namespace, pod.name));
                let now = (pod.state.clone(), pod.blocker.clone());
                if self.pods.get(&key) == Some(&now) {
                    continue;
                }
                self.pods.insert(key.clone(), now);
                let (word, done) =
                    if pod.action == "delete" { ("deleting", "deleted") } else { ("evicting", "evicted") };
                match (pod.state.as_str(), &pod.blocker) {
                    ("Moving", _) => lines.push(format!("{word} pod {}", key.1)),
                    ("HeldUp", Some(blocker)) => lines.push(format!(
                        "pod {} cannot be evicted yet: {blocker}; the server tries again every 5 s",
                        key.1
                    )),
                    ("Gone", _) => lines.push(format!("pod/{} {done}", pod.name)),
                    _ => {}
                }
            }
            if self.nodes.get(&node.name) != Some(&node.phase) {
                self.nodes.insert(node.name.clone(), node.phase.clone());
                match node.phase.as_str() {
                    "Draining" => lines.push(format!("node/{} cordoned, draining", node.name)),
                    "Drained" => lines.push(format!("node/{} drained", node.name)),
                    "Failed" => lines.push(format!(
                        "node/{} not drained: {}",
                        node.name,
                        node.last_error.as_deref().unwrap_or_default()
                    )),
                    _ => {}
                }
            }
        }
        for line in lines {
            if to_stderr {
                eprintln!("{line}");
            } else {
                let _ = write_out(&format!("{line}\n"));
            }
        }
    }
}
