//! `cairn image lint`: the images of a namespace's workloads (or every namespace's) checked against the
//! rules in `image-maintenance`; exit 1 when anything is flagged, for CI.

use image_maintenance::{
    lint::{Finding, Rule, lint},
    workloads,
};
use kube::Client;

use crate::output::{OutputFormat, table};

/// Flags of `cairn image lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct LintArgs {
    /// Every namespace, instead of -n NAMESPACE (or the kubeconfig's).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Rules not to apply (comma-separated): invalid, latest-tag, untagged, unversioned-tag, no-digest,
    /// always-pull-pinned.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

fn findings_table(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no image flagged\n".to_owned();
    }
    let mut rows = vec![["NAMESPACE", "WORKLOAD", "CONTAINER", "IMAGE", "RULE", "WHY"].map(String::from).to_vec()];
    for f in findings {
        rows.push(vec![
            f.namespace.clone(),
            format!("{}/{}", f.kind.to_ascii_lowercase(), f.name),
            f.container.clone(),
            f.image.clone(),
            f.rule.name().to_owned(),
            f.message.clone(),
        ]);
    }
    table(&rows)
}

/// Lints the workloads' images; false (exit 1) when anything is flagged.
pub(super) async fn run(args: LintArgs, client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let ignored = args
        .ignore
        .iter()
        .map(|name| {
            Rule::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
                anyhow::anyhow!("--ignore {name:?}: no such rule; the rules are {}", names.join(", "))
            })
        })
        .collect::<anyhow::Result<Vec<Rule>>>()?;
    let scope = (!args.all_namespaces).then_some(namespace);
    let found = lint(&workloads::read(client, scope, workloads::Pods::Unmanaged).await?, &ignored);
    args.output.print(&found, |f| findings_table(f))?;
    Ok(found.is_empty())
}
