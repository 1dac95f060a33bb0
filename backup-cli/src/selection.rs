//! The selection flags `backup create` and `restore create` share (Velero's names), and their validation.

use anyhow::bail;
use backup_core::selection::parse_label_selector;
use cairn_api::SelectionSpec;
use clap::Args;

/// Which namespaces, resources and objects.
#[derive(Debug, Clone, Args)]
pub(crate) struct SelectionArgs {
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
    /// Only objects matching any of these selectors, separated by " or " as Velero writes them
    /// ('app=a or app=b'), or given in repeated flags; not with --selector.
    #[arg(long)]
    or_selector: Vec<String>,
    /// Cluster-scoped resources: true (or the bare flag) all, false none; unset: all when every namespace is
    /// selected, else only those related to selected objects.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    include_cluster_resources: Option<bool>,
}

/// The selectors of the `--or-selector` values: each value split on " or " (Velero's form).
fn or_selectors(values: &[String]) -> anyhow::Result<Vec<&str>> {
    let mut selectors = Vec::new();
    for value in values {
        for selector in value.split(" or ") {
            let selector = selector.trim();
            if selector.is_empty() {
                bail!("--or-selector {value:?}: a selector is empty; write 'app=a or app=b'");
            }
            selectors.push(selector);
        }
    }
    Ok(selectors)
}

impl SelectionArgs {
    /// Validates the flags into a selection.
    pub(crate) fn spec(&self) -> anyhow::Result<SelectionSpec> {
        let label_selector = self.selector.as_deref().map(parse_label_selector).transpose()?;
        let or_label_selectors =
            or_selectors(&self.or_selector)?.into_iter().map(parse_label_selector).collect::<Result<Vec<_>, _>>()?;
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

    /// Whether no selection flag was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.include_namespaces.is_empty()
            && self.exclude_namespaces.is_empty()
            && self.include_resources.is_empty()
            && self.exclude_resources.is_empty()
            && self.selector.is_none()
            && self.or_selector.is_empty()
            && self.include_cluster_resources.is_none()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        selection: SelectionArgs,
    }

    fn spec(args: &[&str]) -> anyhow::Result<SelectionSpec> {
        Flags::try_parse_from(std::iter::once("cairn").chain(args.iter().copied()))?.selection.spec()
    }

    fn queries(spec: &SelectionSpec) -> Vec<String> {
        spec.or_label_selectors.iter().map(|s| cairn_kube::selectors::LabelMatcher::new(s).unwrap().query()).collect()
    }

    #[test]
    fn an_or_selector_value_splits_on_or_as_velero_writes_it() {
        let one = spec(&["--or-selector", "app=a or app=b"]).unwrap();
        assert_eq!(queries(&one), ["app=a", "app=b"]);
        let mixed = spec(&["--or-selector", "app=a or tier in (x,y)", "--or-selector", "team=z"]).unwrap();
        assert_eq!(queries(&mixed), ["app=a", "tier in (x,y)", "team=z"]);
    }

    #[test]
    fn an_empty_or_selector_part_is_refused() {
        let error = spec(&["--or-selector", "app=a or "]).unwrap_err().to_string();
        assert!(error.contains("a selector is empty"), "{error}");
    }

    #[test]
    fn a_bare_include_cluster_resources_means_true() {
        assert_eq!(spec(&["--include-cluster-resources"]).unwrap().include_cluster_resources, Some(true));
        assert_eq!(spec(&["--include-cluster-resources", "false"]).unwrap().include_cluster_resources, Some(false));
        assert_eq!(spec(&["--include-cluster-resources=false"]).unwrap().include_cluster_resources, Some(false));
        assert_eq!(spec(&[]).unwrap().include_cluster_resources, None);
    }
}
