//! Discovery: the aggregated documents and the per-group ones describe the same types.

use std::time::Duration;

use cairn_kube::discovery::Discovery;
use cairn_tests::{TestEnv, wait::eventually};

/// Every usable type with its version, kind and scope, in discovery's order.
fn described(discovery: &Discovery) -> Vec<String> {
    discovery
        .types
        .iter()
        .map(|t| {
            format!("{}/{} {} namespaced={} {:?}", t.api_version(), t.resource, t.kind, t.namespaced, t.short_names)
        })
        .collect()
}

#[tokio::test]
async fn aggregated_discovery_finds_the_types_the_per_group_documents_find() {
    let client = TestEnv::get().client().await;
    // Other tests add CRDs and API services meanwhile: compare two readings taken close together until
    // they agree.
    let (aggregated, per_group) = eventually(Duration::from_secs(30), "both discoveries agreeing", || async {
        let aggregated = Discovery::run(&client).await.unwrap();
        let per_group = Discovery::run_per_group(&client).await.unwrap();
        let same = described(&aggregated) == described(&per_group)
            && aggregated.group_versions == per_group.group_versions
            && aggregated.warnings.len() == per_group.warnings.len();
        if !same {
            let (a, p) = (described(&aggregated), described(&per_group));
            eprintln!(
                "aggregated only: {:?}; per group only: {:?}; versions equal: {}; warnings {:?} / {:?}",
                a.iter().filter(|t| !p.contains(t)).collect::<Vec<_>>(),
                p.iter().filter(|t| !a.contains(t)).collect::<Vec<_>>(),
                aggregated.group_versions == per_group.group_versions,
                aggregated.warnings,
                per_group.warnings,
            );
        }
        same.then_some((aggregated, per_group))
    })
    .await;
    assert!(described(&aggregated).iter().any(|t| t.starts_with("apps/v1/deployments Deployment namespaced=true")));
    assert!(described(&per_group).iter().any(|t| t.starts_with("v1/namespaces Namespace namespaced=false")));
    assert!(aggregated.types.len() > 40, "only {} types", aggregated.types.len());
}
