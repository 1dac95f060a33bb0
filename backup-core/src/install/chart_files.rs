//! The Helm chart (`deploy/helm/cairn/`) against the Rust code: its CRDs and RBAC rules (the image agent's
//! too) are generated from it, its defaults are `cairn install`'s. `CAIRN_REGENERATE_DEPLOY=1` rewrites the generated files.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::{
    DEFAULT_CPU_LIMIT, DEFAULT_CPU_REQUEST, DEFAULT_IMAGE, DEFAULT_LOCAL_DIRECTORY, DEFAULT_LOCAL_VOLUME_SIZE,
    DEFAULT_MEMORY_LIMIT, DEFAULT_MEMORY_REQUEST, DEFAULT_RUNTIME_SOCKET, IMAGE_AGENT_BINARY, InstallOptions,
    NODE_NAME_VARIABLE, cluster_rules, image_agent_cluster_rules, image_agent_namespace_rules, namespace_rules,
    rbac_restore_rules,
};
use cairn_api::{crd_file_name, crds};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/cairn")
}

/// The header of a generated rules file: where its rules come from and how to regenerate it.
fn rules_header(source: &str) -> String {
    format!(
        "# Generated from backup-core/src/install/{source}; regenerate with\n# CAIRN_REGENERATE_DEPLOY=1 cargo test \
         -p backup-core --lib install\n"
    )
}

/// Every generated file of the chart and its expected content. The cluster rules are split in two so that the
/// chart's `rbac.restoreRbac` can leave the `bind`/`escalate` rule out, as `--no-rbac-restore` does.
fn generated_files() -> Vec<(PathBuf, String)> {
    let chart = chart();
    let mut files: Vec<(PathBuf, String)> = crds()
        .iter()
        .map(|crd| (chart.join("crds").join(crd_file_name(crd)), serde_yaml_ng::to_string(crd).unwrap()))
        .collect();
    for (name, source, rules) in [
        ("cluster-rules.yaml", "rbac.rs", cluster_rules(false)),
        ("rbac-restore-rules.yaml", "rbac.rs", rbac_restore_rules()),
        ("namespace-rules.yaml", "rbac.rs", namespace_rules()),
        ("image-agent-cluster-rules.yaml", "image_agent.rs", image_agent_cluster_rules()),
        ("image-agent-namespace-rules.yaml", "image_agent.rs", image_agent_namespace_rules()),
    ] {
        files.push((
            chart.join("files").join(name),
            format!("{}{}", rules_header(source), serde_yaml_ng::to_string(&rules).unwrap()),
        ));
    }
    files
}

#[test]
fn helm_chart_crds_and_rbac_rules_match_the_rust_code() {
    let regenerate = std::env::var_os("CAIRN_REGENERATE_DEPLOY").is_some();
    let mut stale = Vec::new();
    for (path, expected) in generated_files() {
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale chart files {stale:?}: run `CAIRN_REGENERATE_DEPLOY=1 cargo test -p backup-core --lib install` and \
         commit them"
    );
}

fn read_yaml(path: PathBuf) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn helm_chart_defaults_match_cairn_install() {
    let chart_yaml = read_yaml(chart().join("Chart.yaml"));
    assert_eq!(chart_yaml["appVersion"].as_str(), Some(crate::VERSION), "Chart.yaml appVersion");
    assert_eq!(chart_yaml["version"].as_str(), Some(crate::VERSION), "Chart.yaml version");
    let values = read_yaml(chart().join("values.yaml"));
    let text = |value: &Value| value.as_str().map(str::to_owned).unwrap_or_else(|| format!("{value:?}"));
    let image = format!("{}:{}", text(&values["image"]["repository"]), crate::VERSION);
    assert_eq!(image, DEFAULT_IMAGE);
    assert!(text(&values["image"]["tag"]).is_empty(), "the image tag defaults to the appVersion");
    let defaults = InstallOptions::default();
    assert_eq!(values["replicas"].as_i64(), Some(i64::from(defaults.replicas)));
    let resources = &values["resources"];
    assert_eq!(text(&resources["requests"]["cpu"]), DEFAULT_CPU_REQUEST);
    assert_eq!(text(&resources["requests"]["memory"]), DEFAULT_MEMORY_REQUEST);
    assert_eq!(text(&resources["limits"]["cpu"]), DEFAULT_CPU_LIMIT);
    assert_eq!(text(&resources["limits"]["memory"]), DEFAULT_MEMORY_LIMIT);
    let location = &values["defaultBackupStorageLocation"];
    assert_eq!(location["enabled"].as_bool(), Some(true));
    assert_eq!(text(&location["provider"]), "local");
    assert_eq!(text(&location["bucket"]), DEFAULT_LOCAL_DIRECTORY);
    assert_eq!(text(&location["localVolume"]["size"]), DEFAULT_LOCAL_VOLUME_SIZE);
    assert_eq!(values["rbac"]["restoreRbac"].as_bool(), Some(defaults.restore_rbac), "rbac.restoreRbac");
    let empty = |value: &Value| value.as_mapping().is_some_and(|m| m.is_empty());
    assert!(empty(&values["serviceAccount"]["annotations"]), "serviceAccount.annotations defaults to {{}}");
    assert!(empty(&values["podAnnotations"]), "podAnnotations defaults to {{}}");
    assert_eq!(values["imageAgent"]["enabled"].as_bool(), Some(defaults.image_agent), "imageAgent.enabled");
    assert_eq!(text(&values["imageAgent"]["runtimeSocket"]), DEFAULT_RUNTIME_SOCKET, "imageAgent.runtimeSocket");
}

/// The chart's image agent template spells by hand what `cairn install --image-agent` builds from constants:
/// the binary it runs, the subcommand, and the variable it reads its node from.
#[test]
fn helm_chart_image_agent_runs_what_cairn_install_runs() {
    let template = std::fs::read_to_string(chart().join("templates/image-agent.yaml")).unwrap();
    let command = format!("command:\n        - {IMAGE_AGENT_BINARY}\n        - image\n        - agent\n");
    assert!(template.contains(&command), "the chart's agent does not run {IMAGE_AGENT_BINARY} image agent");
    assert!(
        template.contains(&format!("- name: {NODE_NAME_VARIABLE}\n")),
        "the chart does not set {NODE_NAME_VARIABLE}"
    );
    for file in ["image-agent-cluster-rules.yaml", "image-agent-namespace-rules.yaml"] {
        assert!(template.contains(&format!("files/{file}")), "the chart's agent does not use {file}");
    }
}

/// The chart's Deployment template spells the server's flags, variables and port by hand: each must be
/// what the server parses (`cairn_api::server`).
#[test]
fn helm_chart_deployment_speaks_the_server_contract() {
    use cairn_api::server::{DEFAULT_METRICS_PORT, NAMESPACE_VARIABLE, POD_NAME_VARIABLE, ServerSettings};
    let template = std::fs::read_to_string(chart().join("templates/deployment.yaml")).unwrap();
    let flags_line = template.lines().find(|l| l.contains("$flags := dict")).expect("the template's flag table");
    let names: Vec<&str> = flags_line.split('"').skip(1).step_by(2).collect();
    assert!(names.len() >= 4, "{flags_line}");
    for name in names {
        let sample = if name.ends_with("ttl") { "72h" } else { "5m" };
        ServerSettings::from_args([format!("--{name}={sample}")])
            .unwrap_or_else(|e| panic!("the chart passes --{name}, which the server refuses: {e}"));
    }
    for variable in [NAMESPACE_VARIABLE, POD_NAME_VARIABLE] {
        assert!(template.contains(&format!("- name: {variable}")), "the chart does not set {variable}");
    }
    assert!(template.contains(&format!("containerPort: {DEFAULT_METRICS_PORT}")), "the chart's metrics port");
}
