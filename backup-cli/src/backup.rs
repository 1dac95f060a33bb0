//! `cairn backup ...`: flags, their validation into a backup spec, and what standalone and server mode
//! share in presenting backups. The work of each mode is in `backup/standalone.rs` and `backup/server.rs`.

mod server;
mod standalone;

use cairn_api::{BackupSpec, Compression, SelectionSpec};
use std::{collections::BTreeMap, path::PathBuf};

use crate::client::ServerApi;
use anyhow::{Context, bail};
use cairn_kube::{
    names::{NAME_RULE, is_valid_name},
    report::Problem,
};
use clap::{Args, Subcommand, ValueEnum};

use crate::{
    connect::{Connection, Mode},
    output::{OutputFormat, list_text},
    selection::SelectionArgs,
};

/// `cairn backup` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Back up the cluster's resources (or a selection): standalone into the storage location, with a server
    /// by creating a Backup object.
    ///
    /// With a server, the Backup is created only when the location it goes to (the one named, else the
    /// default) exists and is ReadWrite, and a server runs: the Lease cairn-server in the namespace is held
    /// and was renewed recently, or, for a server run with --leader-elect=false (which keeps no Lease), the
    /// server answers a status request within 5 s.
    Create(Box<CreateArgs>),
    /// List backups.
    Get {
        /// Only these backups.
        names: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show one backup.
    Describe {
        /// The backup.
        name: String,
        /// Also list every resource, warning and error.
        #[arg(long)]
        details: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Download a backup's archive.
    Download {
        /// The backup.
        name: String,
        /// Where to write it: a file (default `<NAME>-data.tar.zst`, or `.tar.gz`, in the current
        /// directory), or `-` for standard output (`cairn backup download NAME -f - | zstd -d | tar -t`).
        /// `-o`/`--output` as in Velero.
        #[arg(short = 'f', long, visible_short_alias = 'o', visible_alias = "output")]
        file: Option<PathBuf>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print a backup's log.
    Logs {
        /// The backup.
        name: String,
    },
    /// Check a backup's archive against its manifest and record, entry by entry, without restoring
    /// (standalone: it reads the storage location itself).
    Verify {
        /// The backup.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Delete backups' stored data and records (with a server: the restores made from them too).
    ///
    /// With a server, each backup gets a DeleteBackupRequest, which the server works through; `backup
    /// describe` shows its outcome. What the server would refuse is refused at once: a backup still New or
    /// InProgress, a location that is ReadOnly or missing, no server running (see `backup create --help`).
    Delete {
        /// The backups.
        #[arg(required = true)]
        names: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        confirm: bool,
        /// Output format: with a server, JSON and YAML print the DeleteBackupRequest(s) created.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// Compression choices on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CompressionArg {
    /// tar + zstd (default).
    Zstd,
    /// tar + gzip, Velero's format.
    Gzip,
}

/// What a backup takes, as `backup create` and `schedule create` spell it (Velero's names).
#[derive(Debug, Args)]
pub(crate) struct SpecArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// How long to keep the backup (Go duration: 720h, 72h30m; at most 2562047h). Unset or 0 means the
    /// default, as in Velero: the server's --default-backup-ttl (shown as <server default>), standalone
    /// 720h0m0s.
    #[arg(long, default_value = "")]
    ttl: String,
    /// The server's BackupStorageLocation to write to; default: the server's default location.
    #[arg(long)]
    storage_location: Option<String>,
    /// Archive compression; default zstd (gzip with --format velero).
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,
    /// `velero` also writes the backup in Velero's bucket layout (velero-backup.json, NAME.tar.gz and its
    /// side files), so that a Velero server pointed at the bucket syncs and restores it; needs gzip.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    Cairn,
    Velero,
}

impl SpecArgs {
    /// Validates the flags into a spec with `storage_location` as its location.
    fn spec_at(&self, storage_location: String) -> anyhow::Result<BackupSpec> {
        let selection = self.selection.spec()?;
        if !self.ttl.is_empty() {
            cairn_kube::duration::parse_duration(&self.ttl).context("--ttl")?;
        }
        Ok(BackupSpec {
            selection,
            ttl: self.ttl.clone(),
            storage_location,
            compression: self.compression.map(|c| match c {
                CompressionArg::Zstd => Compression::Zstd,
                CompressionArg::Gzip => Compression::Gzip,
            }),
            // Hooks are stated in pod annotations, or in a Backup object's spec (Velero has no flag either).
            hooks: Default::default(),
            format: self.format.map(|f| match f {
                FormatArg::Cairn => cairn_api::BackupFormat::Cairn,
                FormatArg::Velero => cairn_api::BackupFormat::Velero,
            }),
        })
    }

    /// Validates the flags into the spec a server runs: the named BackupStorageLocation, or empty for the
    /// server's default.
    pub(crate) fn server_spec(&self) -> anyhow::Result<BackupSpec> {
        if let Some(location) = &self.storage_location {
            check_name("storage location", location)?;
        }
        self.spec_at(self.storage_location.clone().unwrap_or_default())
    }

    /// The BackupStorageLocation named with `--storage-location`.
    pub(crate) fn storage_location(&self) -> Option<&str> {
        self.storage_location.as_deref()
    }

    /// Whether no flag of the spec was given.
    fn is_empty(&self) -> bool {
        self.selection.is_empty()
            && self.ttl.is_empty()
            && self.storage_location.is_none()
            && self.compression.is_none()
    }

    /// Checks that the location named with `--storage-location`, if any, exists on the server and takes
    /// backups, so a typo fails now rather than as a FailedValidation later.
    pub(crate) async fn check_storage_location(&self, server: &ServerApi) -> anyhow::Result<()> {
        if let Some(name) = &self.storage_location {
            server.location_for_backup(name).await?;
        }
        Ok(())
    }
}

/// `cairn backup create` flags (Velero's names).
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The backup's name; with --from-schedule, default `<SCHEDULE>-<YYYYMMDDhhmmss>`.
    #[arg(required_unless_present = "from_schedule")]
    name: Option<String>,
    #[command(flatten)]
    spec: SpecArgs,
    /// With a server: back up as the schedule does, with its template's spec and its labels (plus
    /// cairn.dev/schedule-name), now; the spec flags (selection, --ttl, --storage-location, --compression)
    /// are then not allowed.
    #[arg(long)]
    from_schedule: Option<String>,
    /// Labels for the backup (key=value, comma-separated).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// With a server: follow the backup until it ends, and exit 0 only if it Completed. (Standalone runs
    /// always wait.) Waiting stops with an error when the server stops running.
    #[arg(long)]
    wait: bool,
    /// With --wait: stop waiting after this long (Go duration: 30m, 2h) and exit 1; the server carries on
    /// with the backup. Default: wait until it ends.
    #[arg(long, requires = "wait")]
    timeout: Option<String>,
    /// Output format of the result.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// `--timeout`, read.
pub(crate) fn wait_timeout(timeout: Option<&str>) -> anyhow::Result<Option<std::time::Duration>> {
    timeout.map(|t| cairn_kube::duration::parse_duration(t).context("--timeout")).transpose()
}

impl CreateArgs {
    /// The `--labels`, as a map.
    fn labels(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut labels = BTreeMap::new();
        for pair in &self.labels {
            let (key, value) = pair.split_once('=').with_context(|| format!("--labels {pair:?}: write key=value"))?;
            labels.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        Ok(labels)
    }
}

/// How an empty TTL reads: the server applies its `--default-backup-ttl` when the backup starts.
pub(crate) const SERVER_DEFAULT_TTL: &str = "<server default>";

/// Checks `name` (of a `what`: backup, schedule, ...) against the naming rule of Kubernetes objects.
pub(crate) fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    if is_valid_name(name) {
        return Ok(());
    }
    bail!("invalid {what} name {name:?}: {NAME_RULE}")
}

/// Where `cairn backup download` writes `name`'s archive: `None` for standard output (`-f -`), else the
/// file given or the default one, refused if it exists and `force` was not given.
fn download_path(name: &str, file: Option<PathBuf>, extension: &str, force: bool) -> anyhow::Result<Option<PathBuf>> {
    if file.as_deref() == Some(std::path::Path::new("-")) {
        return Ok(None);
    }
    let path = file.unwrap_or_else(|| PathBuf::from(format!("{name}-data.{extension}")));
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it, -f PATH to write elsewhere or -f - for standard output",
            path.display()
        );
    }
    Ok(Some(path))
}

/// `names` without repeats, in the order given.
fn distinct(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    names.into_iter().filter(|n| seen.insert(n.clone())).collect()
}

/// What a deletion of `names` is about, for the confirmation: `backup "a"` or `backups "a", "b"`.
fn deletion_subject(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    if names.len() == 1 { format!("backup {}", quoted[0]) } else { format!("backups {}", quoted.join(", ")) }
}

/// `title:` and one indented line per problem; nothing when there are none.
fn problems_text(problems: &[Problem], title: &str) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut text = format!("{title}:\n");
    for problem in problems {
        text.push_str(&format!("  {problem}\n"));
    }
    text
}

/// A selection's label selector(s) as one line: `app=web`, `a=b or c=d`, or `<none>`.
pub(crate) fn selector_text(spec: &SelectionSpec) -> String {
    let show = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
        cairn_kube::selectors::LabelMatcher::new(s).map(|m| m.query()).unwrap_or_default()
    };
    match (&spec.label_selector, spec.or_label_selectors.as_slice()) {
        (Some(s), _) => show(s),
        (None, []) => "<none>".into(),
        (None, many) => many.iter().map(show).collect::<Vec<_>>().join(" or "),
    }
}

/// What a backup spec selects, as the paragraphs of a description.
pub(crate) fn spec_text(spec: &BackupSpec, storage_location: &str) -> String {
    let s = &spec.selection;
    let all_or = |v: &[String]| if v.is_empty() { "*".to_owned() } else { v.join(", ") };
    format!(
        "Namespaces:\n  Included:  {}\n  Excluded:  {}\n\nResources:\n  Included:        {}\n  Excluded:        {}\n  Cluster-scoped:  {}\n\nLabel selector:  {}\n\nStorage location:  {}\nTTL:               {}\nCompression:       {}\n",
        all_or(&s.included_namespaces),
        list_text(&s.excluded_namespaces),
        all_or(&s.included_resources),
        list_text(&s.excluded_resources),
        match s.include_cluster_resources {
            Some(true) => "included",
            Some(false) => "excluded",
            None => "auto",
        },
        selector_text(s),
        storage_location,
        if spec.ttl.is_empty() { SERVER_DEFAULT_TTL } else { &spec.ttl },
        match spec.compression.unwrap_or(Compression::Zstd) {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        },
    )
}

/// Backs up `namespaces` as `cairn backup create NAME --include-namespaces ... --labels ... --wait` does,
/// standalone or through the server as `connection` leads; true only when the backup Completed.
pub(crate) async fn create_of_namespaces(
    name: &str,
    namespaces: &[String],
    labels: &str,
    connection: &Connection,
) -> anyhow::Result<bool> {
    /// `backup create`'s flags, parsed from the words a person would type.
    #[derive(clap::Parser)]
    struct Create {
        #[command(flatten)]
        args: CreateArgs,
    }
    let words = ["create", name, "--include-namespaces", &namespaces.join(","), "--labels", labels, "--wait"];
    let create = <Create as clap::Parser>::try_parse_from(words)?;
    let mode = connection.mode().await?;
    mode.note();
    run(BackupCommand::Create(Box::new(create.args)), connection, &mode).await
}

/// Runs a `cairn backup` subcommand in `mode`. Ok(false) means the command ran but its subject is not sound
/// (a backup that did not complete, a failed verification): exit non-zero.
pub(crate) async fn run(command: BackupCommand, connection: &Connection, mode: &Mode) -> anyhow::Result<bool> {
    match mode {
        Mode::Standalone(_) => standalone::run(command, connection).await,
        Mode::Server(server) => server::run(command, server).await,
    }
}

/// The hooks a backup or restore ran, as `describe --details` lists them: each with its pod, container, outcome, exit
/// code, duration and last lines of output.
pub(crate) fn hooks_text(hooks: &[backup_core::backup::HookRun]) -> String {
    if hooks.is_empty() {
        return String::new();
    }
    let mut text = "\nHooks:\n".to_owned();
    for hook in hooks {
        let exit = hook.exit_code.map(|c| format!(", exit {c}")).unwrap_or_default();
        text.push_str(&format!(
            "  {} {}/{} [{}] {:?}{exit}, {} ms ({}): {}\n",
            hook.phase.as_str(),
            hook.namespace,
            hook.pod,
            hook.container,
            hook.outcome,
            hook.duration_ms,
            hook.source,
            hook.command.join(" ")
        ));
        if let Some(message) = &hook.message {
            text.push_str(&format!("    {message}\n"));
        }
        for line in &hook.output {
            text.push_str(&format!("    | {line}\n"));
        }
    }
    text
}
