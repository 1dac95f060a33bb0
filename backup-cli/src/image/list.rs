//! `cairn image list`: every image with its size, nodes and pods (wide: every name), each node's unused
//! images and bytes, and totals; `-o json|yaml` for scripts. From the nodes' status, or with
//! `--from-runtime` from the runtimes themselves through the nodes' image agents (in Cairn's namespace, `-n`),
//! with the bytes a prune would free (PRUNABLE: RECLAIMABLE less what a prune keeps).

use std::collections::BTreeMap;

use image_maintenance::inventory::{self, Inventory};
use kube::Client;

use crate::output::{ListFormat, human_bytes, table};

/// Flags of `cairn image list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only this node's images.
    #[arg(long)]
    node: Option<String>,
    /// Only nodes whose labels match this selector (kubectl syntax).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Only images no pod on the node uses.
    #[arg(long)]
    unused: bool,
    /// Ask each node's image agent for its runtime's full list (the kubelet's status reports at most 50
    /// images per node) and what a prune would free there; nodes without an agent keep their status.
    #[arg(long)]
    from_runtime: bool,
    /// With --from-runtime: how long to wait for the agents (a Go duration).
    #[arg(long, default_value = "2m", requires = "from_runtime")]
    timeout: String,
    /// How to print: table, wide (every name of each image), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table)]
    output: ListFormat,
}

fn text(inventory: &Inventory, wide: bool) -> String {
    let mut header = ["IMAGE", "SIZE", "NODES", "PODS"].map(String::from).to_vec();
    if wide {
        header.push("NAMES".into());
    }
    let mut rows = vec![header];
    for image in &inventory.images {
        let mut row = vec![
            image.image.clone(),
            human_bytes(image.size_bytes),
            image.nodes.len().to_string(),
            image.pods.len().to_string(),
        ];
        if wide {
            row.push(image.names.join(","));
        }
        rows.push(row);
    }
    let mut out = table(&rows);
    let from_runtime = inventory.nodes.iter().any(|n| n.prunable_bytes.is_some());
    let mut header = ["NODE", "IMAGES", "SIZE", "UNUSED", "RECLAIMABLE"].map(String::from).to_vec();
    if from_runtime {
        header.extend(["PRUNABLE".into(), "SOURCE".into()]);
    }
    let mut nodes = vec![header];
    for node in &inventory.nodes {
        let mut row = vec![
            node.node.clone(),
            node.images.to_string(),
            human_bytes(node.bytes),
            node.unused.len().to_string(),
            human_bytes(node.unused_bytes),
        ];
        if from_runtime {
            row.push(node.prunable_bytes.map_or_else(|| "-".to_owned(), human_bytes));
            row.push(node.source.to_owned());
        }
        nodes.push(row);
    }
    out.push('\n');
    out.push_str(&table(&nodes));
    out.push_str(&format!(
        "\nTOTAL: {} images, {} on {} node(s), {} reclaimable (images no pod on their node uses)\n",
        inventory.total_images,
        human_bytes(inventory.total_bytes),
        inventory.nodes.len(),
        human_bytes(inventory.unused_bytes)
    ));
    out
}

/// Lists the images; `namespace` is Cairn's, where the agents take requests.
pub(super) async fn run(args: ListArgs, client: &Client, namespace: &str) -> anyhow::Result<bool> {
    if let Some(selector) = &args.selector {
        cairn_kube::selectors::parse_label_selector(selector)?;
    }
    let runtime = match args.from_runtime {
        true => {
            let timeout = cairn_kube::duration::parse_duration(&args.timeout)
                .map_err(|e| anyhow::anyhow!("invalid --timeout {:?}: {e}", args.timeout))?;
            let (node, selector) = (args.node.as_deref(), args.selector.as_deref());
            super::prune::runtime_lists(client, namespace, node, selector, timeout).await?
        }
        false => BTreeMap::new(),
    };
    let mut inventory = inventory::read(client, args.selector.as_deref(), args.node.as_deref(), &runtime).await?;
    if args.unused {
        inventory = inventory.only_unused();
    }
    args.output.print(&inventory, text)?;
    Ok(true)
}
