//! `cairn image list`: every image with its size, nodes and pods (wide: every name), each node's unused
//! images and bytes, and totals; `-o json|yaml` for scripts.

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
    let mut nodes = vec![["NODE", "IMAGES", "SIZE", "UNUSED", "RECLAIMABLE"].map(String::from).to_vec()];
    for node in &inventory.nodes {
        nodes.push(vec![
            node.node.clone(),
            node.images.to_string(),
            human_bytes(node.bytes),
            node.unused.len().to_string(),
            human_bytes(node.unused_bytes),
        ]);
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

/// Lists the images.
pub(super) async fn run(args: ListArgs, client: &Client) -> anyhow::Result<bool> {
    if let Some(selector) = &args.selector {
        cairn_kube::selectors::parse_label_selector(selector)?;
    }
    let mut inventory = inventory::read(client, args.selector.as_deref(), args.node.as_deref()).await?;
    if args.unused {
        inventory = inventory.only_unused();
    }
    args.output.print(&inventory, text)?;
    Ok(true)
}
