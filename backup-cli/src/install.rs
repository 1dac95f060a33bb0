//! `cairn install`: flags into installation options, the manifests printed (`-o yaml|json`) or applied to
//! the cluster, each object reported (applied, created, or kept when the default location or its Secret
//! exists already).

use crate::output::write_out;
use cairn_api::server::ServerSettings;
use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use backup_core::install::{
    self, AwsConfig, DEFAULT_CPU_LIMIT, DEFAULT_CPU_REQUEST, DEFAULT_IMAGE, DEFAULT_LOCAL_DIRECTORY,
    DEFAULT_LOCAL_VOLUME_SIZE, DEFAULT_MEMORY_LIMIT, DEFAULT_MEMORY_REQUEST, DEFAULT_RUNTIME_SOCKET, DefaultLocation,
    InstallOptions, LocationProvider, Manifest, Scheduling, ServerResources,
};
use clap::ValueEnum;

use crate::{connect::Connection, output::table};

/// How long `--wait` waits for the server.
const WAIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Flags of `cairn install` (the server's namespace is the global `--namespace`).
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// The server's container image.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    image: String,
    /// Server pods; one works at a time (leader election). A local location allows one only.
    #[arg(long, default_value_t = 1)]
    replicas: i32,
    /// Where the default location keeps backups: aws (AWS S3 or an S3-compatible server) or local (a
    /// directory on a ReadWriteOnce volume in the server's pod).
    #[arg(long, value_enum, default_value_t = Provider::Local)]
    provider: Provider,
    /// The S3 bucket (aws, required), or the absolute directory in the server's pod (local; default
    /// /var/lib/cairn/storage).
    #[arg(long)]
    bucket: Option<String>,
    /// A key prefix inside the bucket.
    #[arg(long)]
    prefix: Option<String>,
    /// aws only: the location's config, KEY=VALUE,... with keys region, s3Url (an S3-compatible server's
    /// endpoint), profile (in the credentials file) and s3ForcePathStyle (accepted for Velero's guides;
    /// changes nothing, Cairn always uses path-style requests).
    #[arg(long, value_name = "KEY=VALUE,...")]
    backup_location_config: Option<String>,
    /// aws only: an AWS credentials file, stored in Secret cairn-credentials for the location. Default: the
    /// server's environment (for example IAM roles for service accounts).
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Create no BackupStorageLocation (create one yourself later). When the location `default` or Secret
    /// cairn-credentials exists already, install keeps it unchanged whatever these flags say.
    #[arg(long)]
    no_default_backup_location: bool,
    /// Leave out bind and escalate on roles and clusterroles, with which the server's account could grant
    /// itself any permission (effectively cluster-admin). Restoring a Role or ClusterRole that grants more
    /// than the server holds, or a binding to one, then fails.
    #[arg(long)]
    no_rbac_restore: bool,
    /// Annotations on the server's ServiceAccount, KEY=VALUE,... (for example
    /// eks.amazonaws.com/role-arn=ARN for IAM roles for service accounts).
    #[arg(long, value_name = "KEY=VALUE,...")]
    sa_annotations: Option<String>,
    /// Annotations on the server's pods, KEY=VALUE,...
    #[arg(long, value_name = "KEY=VALUE,...")]
    pod_annotations: Option<String>,
    /// Node labels the server's pods need, KEY=VALUE,... (their nodeSelector).
    #[arg(long, value_name = "KEY=VALUE,...")]
    node_selector: Option<String>,
    /// Taints the server's pods tolerate, KEY[=VALUE][:EFFECT],... as `kubectl taint` writes them: with a value
    /// the taint's must be equal, without one any value matches; without an effect every effect is tolerated.
    #[arg(long, value_name = "KEY[=VALUE][:EFFECT],...")]
    tolerations: Option<String>,
    /// Also install the image agent: a DaemonSet running `cairn image agent` from --image on every node (every
    /// taint tolerated), which carries out the node's ImagePrunes (`cairn image prune --node`, the server's
    /// ImagePrunePolicies) over the container runtime's CRI socket. It runs as root, with every capability
    /// dropped and no privilege escalation, to open the root-owned socket, whose directory it mounts read-only
    /// from the host. Its account cairn-image-agent reads pods and workloads cluster-wide and, in the namespace,
    /// reads ImagePrunes, writes their status and renews its Lease image-agent-<node>.
    #[arg(long)]
    image_agent: bool,
    /// With --image-agent: the container runtime's CRI socket on the nodes (CRI-O's is
    /// /var/run/crio/crio.sock).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_RUNTIME_SOCKET, requires = "image_agent")]
    image_agent_runtime_socket: String,
    /// local only: the size of the location's volume.
    #[arg(long, default_value = DEFAULT_LOCAL_VOLUME_SIZE)]
    local_volume_size: String,
    /// The server's settings (its own flags, written into its Deployment when they differ from the defaults).
    #[command(flatten, next_help_heading = "Server settings")]
    server: ServerSettings,
    /// The server's CPU request.
    #[arg(long, default_value = DEFAULT_CPU_REQUEST)]
    cpu_request: String,
    /// The server's memory request.
    #[arg(long, default_value = DEFAULT_MEMORY_REQUEST)]
    memory_request: String,
    /// The server's CPU limit.
    #[arg(long, default_value = DEFAULT_CPU_LIMIT)]
    cpu_limit: String,
    /// The server's memory limit.
    #[arg(long, default_value = DEFAULT_MEMORY_LIMIT)]
    memory_limit: String,
    /// Build the manifests and send nothing to the cluster (with -o, print them; without, list them).
    #[arg(long)]
    dry_run: bool,
    /// Print the manifests: yaml (documents for `kubectl apply --server-side -f`) or json (a v1 List).
    /// Without --dry-run they are applied too, and what was applied is reported on stderr.
    #[arg(short = 'o', long, value_enum)]
    output: Option<ManifestFormat>,
    /// After applying, wait (up to 5 minutes) until every server pod of the installed version is available, as
    /// `kubectl rollout status` does; fail at once, with the pod's reason and last log lines, when one cannot
    /// start (an image that cannot be pulled, a crash loop).
    #[arg(long)]
    wait: bool,
}

/// The default location's provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// AWS S3 or an S3-compatible server.
    Aws,
    /// A directory on a volume in the server's pod.
    Local,
}

/// How manifests are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ManifestFormat {
    /// YAML documents separated by `---`.
    Yaml,
    /// One JSON `v1` List.
    Json,
}

/// Installs (or with `--dry-run` only builds) Cairn's server in the namespace `connection` names.
pub(crate) async fn run(args: InstallArgs, connection: &Connection) -> anyhow::Result<bool> {
    if args.wait && args.dry_run {
        bail!("--wait waits for an applied server, and --dry-run applies nothing: drop one of them");
    }
    let options = options(&args, &connection.namespace)?;
    let manifests = install::manifests(&options)?;
    if let Some(format) = args.output {
        write_out(&render(&manifests, format)?)?;
    }
    if args.dry_run {
        if args.output.is_none() {
            write_out(&listing(&manifests))?;
            write_out("Dry run: nothing was sent to the cluster. Print the manifests with -o yaml.\n")?;
        }
        return Ok(true);
    }
    // With -o, stdout holds the manifests: the report goes to stderr.
    // A reader that went away does not stop an install halfway: the report is then dropped.
    let report = |line: String| {
        if args.output.is_some() {
            eprintln!("{line}");
        } else {
            let _ = write_out(&format!("{line}\n"));
        }
    };
    let client = connection.client().await?;
    install::apply(&client, &manifests, |applied| report(applied.to_string())).await?;
    let namespace = &options.namespace;
    if options.image_agent {
        report(format!(
            "The image agent runs on every node; it does not wait for them: check it with `kubectl -n {namespace} get \
             daemonset {}`.",
            install::IMAGE_AGENT_NAME
        ));
    }
    if args.wait {
        report(format!("Waiting for the server in namespace {namespace} to become available..."));
        install::wait_until_available(&client, namespace, WAIT_TIMEOUT).await?;
        report(format!("Cairn's server is running in namespace {namespace}."));
    } else {
        report(format!(
            "Cairn's server is installed in namespace {namespace}. Check it with `kubectl -n {namespace} get \
             deployment {}`.",
            install::SERVER_NAME
        ));
    }
    Ok(true)
}

/// The installation the flags describe, with flag combinations that make no sense refused.
fn options(args: &InstallArgs, namespace: &str) -> anyhow::Result<InstallOptions> {
    let default_location = if args.no_default_backup_location {
        let location_flags = [
            (args.bucket.is_some(), "--bucket"),
            (args.prefix.is_some(), "--prefix"),
            (args.backup_location_config.is_some(), "--backup-location-config"),
            (args.secret_file.is_some(), "--secret-file"),
        ];
        if let Some((_, flag)) = location_flags.iter().find(|(given, _)| *given) {
            bail!("{flag} describes the default location, which --no-default-backup-location leaves out: drop one");
        }
        None
    } else {
        Some(default_location(args)?)
    };
    Ok(InstallOptions {
        namespace: namespace.to_owned(),
        image: args.image.clone(),
        replicas: args.replicas,
        resources: ServerResources {
            cpu_request: args.cpu_request.clone(),
            memory_request: args.memory_request.clone(),
            cpu_limit: args.cpu_limit.clone(),
            memory_limit: args.memory_limit.clone(),
        },
        server_settings: args.server.clone(),
        default_location,
        restore_rbac: !args.no_rbac_restore,
        service_account_annotations: annotations("--sa-annotations", args.sa_annotations.as_deref())?,
        pod_annotations: annotations("--pod-annotations", args.pod_annotations.as_deref())?,
        scheduling: Scheduling::parse(args.node_selector.as_deref(), args.tolerations.as_deref())?,
        image_agent: args.image_agent,
        runtime_socket: args.image_agent_runtime_socket.clone(),
    })
}

/// Reads `KEY=VALUE,...` annotations given to `flag` (the library checks the keys).
fn annotations(flag: &str, text: Option<&str>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut annotations = BTreeMap::new();
    for entry in text.unwrap_or_default().split(',').filter(|e| !e.trim().is_empty()) {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("invalid {flag} entry {entry:?}: write KEY=VALUE,...");
        };
        let key = key.trim();
        if annotations.insert(key.to_owned(), value.trim().to_owned()).is_some() {
            bail!("{flag} gives {key:?} twice: give each annotation once");
        }
    }
    Ok(annotations)
}

fn default_location(args: &InstallArgs) -> anyhow::Result<DefaultLocation> {
    let provider = match args.provider {
        Provider::Aws => {
            if args.bucket.is_none() {
                bail!("--provider aws needs --bucket NAME: the S3 bucket backups go to");
            }
            let config = match &args.backup_location_config {
                Some(text) => aws_config(text)?,
                None => AwsConfig::default(),
            };
            let credentials = match &args.secret_file {
                Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read --secret-file {}: give a readable AWS credentials file", path.display())
                })?),
                None => None,
            };
            LocationProvider::Aws { config, credentials }
        }
        Provider::Local => {
            if args.secret_file.is_some() || args.backup_location_config.is_some() {
                bail!(
                    "--secret-file and --backup-location-config are for --provider aws: a local location needs \
                     neither; drop them or pass --provider aws"
                );
            }
            LocationProvider::Local { volume_size: args.local_volume_size.clone() }
        }
    };
    Ok(DefaultLocation {
        bucket: args.bucket.clone().unwrap_or_else(|| DEFAULT_LOCAL_DIRECTORY.to_owned()),
        prefix: args.prefix.clone(),
        provider,
    })
}

/// Reads `region=..,s3Url=..,profile=..,s3ForcePathStyle=..`.
fn aws_config(text: &str) -> anyhow::Result<AwsConfig> {
    let mut config = AwsConfig::default();
    for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
        let Some((key, value)) = entry.split_once('=') else {
            bail!(
                "invalid --backup-location-config entry {entry:?}: write KEY=VALUE,... (keys {})",
                AwsConfig::KEYS.join(", ")
            );
        };
        let slot = match key.trim() {
            "region" => &mut config.region,
            "s3Url" => &mut config.s3_url,
            "profile" => &mut config.profile,
            "s3ForcePathStyle" => &mut config.s3_force_path_style,
            other => bail!("unknown key {other:?} in --backup-location-config: use {}", AwsConfig::KEYS.join(", ")),
        };
        *slot = Some(value.trim().to_owned());
    }
    Ok(config)
}

/// The manifests as `format`: YAML documents (each opened by `---`) or a JSON `v1` List.
fn render(manifests: &[Manifest], format: ManifestFormat) -> anyhow::Result<String> {
    Ok(match format {
        ManifestFormat::Yaml => {
            let mut text = format!(
                "# Cairn {}: the server's manifests, as `cairn install --dry-run -o yaml` prints them.\n",
                backup_core::VERSION
            );
            for manifest in manifests {
                text.push_str("---\n");
                text.push_str(&serde_yaml_ng::to_string(manifest)?);
            }
            text
        }
        ManifestFormat::Json => {
            let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": manifests });
            serde_json::to_string_pretty(&list)? + "\n"
        }
    })
}

/// What would be applied, as a table; IF PRESENT says whether an existing object is updated or kept.
fn listing(manifests: &[Manifest]) -> String {
    let mut rows = vec![vec!["KIND".to_owned(), "NAMESPACE".to_owned(), "NAME".to_owned(), "IF PRESENT".to_owned()]];
    for manifest in manifests {
        let namespace = manifest.namespace().unwrap_or("<cluster>").to_owned();
        let if_present = if manifest.is_create_only() { "kept" } else { "updated" };
        rows.push(vec![manifest.kind().to_owned(), namespace, manifest.name().to_owned(), if_present.to_owned()]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `cairn install ...` parsed as the binary parses it.
    fn parse(args: &[&str]) -> (InstallArgs, String) {
        let argv = ["cairn", "install", "--namespace", install::DEFAULT_NAMESPACE].iter().chain(args);
        let cli = crate::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::Command::Install(install) => (*install, cli.connection.namespace),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn refusal(args: &[&str]) -> String {
        let (install, namespace) = parse(args);
        options(&install, &namespace).unwrap_err().to_string()
    }

    /// `deploy/manifests/cairn.yaml` must be `cairn install --dry-run -o yaml` with default options. Run with
    /// `CAIRN_REGENERATE_DEPLOY=1` to rewrite it.
    #[test]
    fn deploy_manifest_is_the_default_install_output() {
        let (install, namespace) = parse(&["--dry-run", "-o", "yaml"]);
        let expected =
            render(&install::manifests(&options(&install, &namespace).unwrap()).unwrap(), ManifestFormat::Yaml)
                .unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/manifests/cairn.yaml");
        if std::env::var_os("CAIRN_REGENERATE_DEPLOY").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        assert!(
            std::fs::read_to_string(&path).ok().as_deref() == Some(expected.as_str()),
            "{} is stale: run `CAIRN_REGENERATE_DEPLOY=1 cargo test -p backup-cli deploy_manifest` and commit it",
            path.display()
        );
    }

    #[test]
    fn aws_location_needs_a_bucket() {
        assert!(refusal(&["--provider", "aws"]).contains("--bucket"));
    }

    #[test]
    fn location_config_takes_known_keys_only() {
        let config = aws_config("region=eu-west-1, s3Url=http://minio:9000,profile=backup").unwrap();
        assert_eq!(config.region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.s3_url.as_deref(), Some("http://minio:9000"));
        assert_eq!(config.profile.as_deref(), Some("backup"));
        assert!(aws_config("bucket=x").unwrap_err().to_string().contains("region, s3Url, profile"));
        assert!(aws_config("region").unwrap_err().to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn location_config_accepts_s3_force_path_style_as_velero_guides_write_it() {
        let config = aws_config("region=minio,s3ForcePathStyle=true,s3Url=http://minio:9000").unwrap();
        assert_eq!(config.s3_force_path_style.as_deref(), Some("true"));
        let (install, namespace) = parse(&[
            "--provider",
            "aws",
            "--bucket",
            "b",
            "--backup-location-config",
            "region=minio,s3ForcePathStyle=true",
        ]);
        install::manifests(&options(&install, &namespace).unwrap()).unwrap();
    }

    #[test]
    fn rbac_restore_is_on_unless_no_rbac_restore_is_given() {
        let (install, namespace) = parse(&[]);
        assert!(options(&install, &namespace).unwrap().restore_rbac);
        let (install, namespace) = parse(&["--no-rbac-restore"]);
        assert!(!options(&install, &namespace).unwrap().restore_rbac);
    }

    #[test]
    fn annotation_flags_become_the_account_and_pod_annotations() {
        let (install, namespace) = parse(&[
            "--sa-annotations",
            "eks.amazonaws.com/role-arn=arn:aws:iam::1:role/cairn",
            "--pod-annotations",
            "prometheus.io/scrape=true,prometheus.io/port=8085",
        ]);
        let options = options(&install, &namespace).unwrap();
        assert_eq!(options.service_account_annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::1:role/cairn");
        assert_eq!(options.pod_annotations.len(), 2);
        assert_eq!(options.pod_annotations["prometheus.io/port"], "8085");
        assert!(refusal(&["--pod-annotations", "a=1,a=2"]).contains("twice"));
        assert!(refusal(&["--sa-annotations", "novalue"]).contains("--sa-annotations"));
    }

    #[test]
    fn local_location_refuses_aws_settings() {
        assert!(refusal(&["--backup-location-config", "region=x"]).contains("--provider aws"));
        assert!(refusal(&["--secret-file", "/nonexistent"]).contains("--provider aws"));
    }

    #[test]
    fn location_flags_conflict_with_no_default_location() {
        assert!(refusal(&["--no-default-backup-location", "--bucket", "b"]).contains("--no-default-backup-location"));
        let (install, namespace) = parse(&["--no-default-backup-location"]);
        assert!(options(&install, &namespace).unwrap().default_location.is_none());
    }

    #[test]
    fn image_agent_is_installed_only_when_asked_on_the_socket_given() {
        let installed = |args: &[&str]| {
            let (install, namespace) = parse(args);
            options(&install, &namespace).unwrap()
        };
        let plain = installed(&[]);
        assert!(!plain.image_agent);
        assert!(install::manifests(&plain).unwrap().iter().all(|m| m.kind() != "DaemonSet"));
        assert_eq!(installed(&["--image-agent"]).runtime_socket, DEFAULT_RUNTIME_SOCKET);
        let crio = installed(&["--image-agent", "--image-agent-runtime-socket", "/var/run/crio/crio.sock"]);
        assert!(crio.image_agent);
        assert_eq!(crio.runtime_socket, "/var/run/crio/crio.sock");
        let manifests = install::manifests(&crio).unwrap();
        let agent = manifests.iter().find(|m| m.kind() == "DaemonSet").unwrap();
        assert_eq!(agent.name(), install::IMAGE_AGENT_NAME);
        let without_agent = ["cairn", "install", "--image-agent-runtime-socket", "/var/run/crio/crio.sock"];
        let error = crate::Cli::try_parse_from(without_agent).unwrap_err().to_string();
        assert!(error.contains("--image-agent"), "{error}");
    }

    /// The contract between `cairn install --image-agent` and `cairn image agent`: the DaemonSet's command is
    /// this binary's, and it parses as the agent with the installation's namespace (the node's name comes from
    /// NODE_NAME in the pod, given here as --node-name).
    #[test]
    fn the_installed_image_agent_command_parses_as_cairn_image_agent() {
        let options = InstallOptions { namespace: "ops".into(), image_agent: true, ..InstallOptions::default() };
        let manifests = install::manifests(&options).unwrap();
        let agent = manifests.iter().find(|m| m.kind() == "DaemonSet").unwrap();
        let command: Vec<String> =
            serde_json::from_value(agent.object().data["spec"]["template"]["spec"]["containers"][0]["command"].clone())
                .unwrap();
        assert_eq!(command[0], install::IMAGE_AGENT_BINARY);
        assert!(command[0].ends_with(&format!("/{}", env!("CARGO_BIN_NAME"))), "{command:?}");
        let argv = command.iter().map(String::as_str).chain(["--node-name", "node1"]);
        let cli = crate::Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert_eq!(cli.connection.namespace, "ops");
        match cli.command {
            crate::Command::Image(image) => {
                assert!(matches!(*image, crate::image::ImageCommand::Agent(_)), "{image:?}")
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn json_output_is_one_list_of_every_manifest() {
        let manifests = install::manifests(&InstallOptions::default()).unwrap();
        let list: serde_json::Value = serde_json::from_str(&render(&manifests, ManifestFormat::Json).unwrap()).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"].as_array().unwrap().len(), manifests.len());
    }
}
