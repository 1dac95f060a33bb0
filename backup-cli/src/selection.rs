//! The selection flags `backup create` and `restore create` share (Velero's names), and their validation.

use anyhow::bail;
use backup_core::selection::{SelectionSpec, parse_label_selector};
use clap::Args;

/// Which namespaces, resources and objects.
#[derive(Debug, Clone, Args)]
pub struct SelectionArgs {
    /// Namespaces to include (names or globs, comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    include_namespaces: Vec<String>,
    /// Namespaces to exclude (names or globs).
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Resources to include (pods, deploy, deployments.apps, ...); default all.
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Resources to exclude.
    #[arg(long, value_delimiter = ',')]
    exclude_resources: Vec<String>,
    /// Only objects matching this label selector (kubectl syntax).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Only objects matching any of these selectors (repeat the flag); not with --selector.
    #[arg(long)]
    or_selector: Vec<String>,
    /// Cluster-scoped resources: true all, false none; unset only when every namespace is selected.
    #[arg(long)]
    include_cluster_resources: Option<bool>,
}

impl SelectionArgs {
    /// Validates the flags into a selection.
    pub fn spec(&self) -> anyhow::Result<SelectionSpec> {
        let label_selector = self.selector.as_deref().map(parse_label_selector).transpose()?;
        let or_label_selectors =
            self.or_selector.iter().map(|s| parse_label_selector(s)).collect::<Result<Vec<_>, _>>()?;
        if label_selector.is_some() && !or_label_selectors.is_empty() {
            bail!("--selector and --or-selector cannot be combined; use one of them");
        }
        Ok(SelectionSpec {
            included_namespaces: self.include_namespaces.clone(),
            excluded_namespaces: self.exclude_namespaces.clone(),
            included_resources: self.include_resources.clone(),
            excluded_resources: self.exclude_resources.clone(),
            label_selector,
            or_label_selectors,
            include_cluster_resources: self.include_cluster_resources,
        })
    }
}
