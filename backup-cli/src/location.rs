//! `cairn backup-location ...` (server only): BackupStorageLocation objects, the buckets and directories a
//! server writes backups to. At most one is the default: making one the default first unsets the others, so a
//! failure midway leaves no default rather than two.

use cairn_api::{
    AccessMode, BackupFormat, BackupStorageLocation, BackupStorageLocationSpec, LocationPhase, ObjectStorage,
    SecretKeySelector,
};
use std::collections::BTreeMap;

use crate::client::{ClientError, ServerApi};
use anyhow::{Context, bail};
use cairn_kube::duration::parse_duration;
use clap::{Args, Subcommand, ValueEnum};
use kube::{ResourceExt, api::ObjectMeta};
use serde_json::json;

use crate::{
    backup::check_name,
    confirm::confirm,
    output::{OutputFormat, printable, table, time_text},
};

/// `cairn backup-location` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum LocationCommand {
    /// Add a storage location: an S3 bucket (provider aws) or a directory on the server's machine (local).
    Create(CreateArgs),
    /// List storage locations.
    Get {
        /// Only these locations.
        names: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Change a storage location: whether it is the default, its access mode, its credential.
    Set(SetArgs),
    /// Delete a storage location (the data in it is kept).
    Delete {
        /// The location.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        confirm: bool,
        /// Output format: JSON and YAML print the deleted location.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// Providers on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProviderArg {
    /// AWS S3 or any S3-compatible server.
    Aws,
    /// A directory on the server's file system.
    Local,
}

/// Access modes on the command line (Velero's spelling).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AccessModeArg {
    /// Backups and deletions allowed.
    #[value(name = "ReadWrite")]
    ReadWrite,
    /// Only restores and sync.
    #[value(name = "ReadOnly")]
    ReadOnly,
}

impl From<AccessModeArg> for AccessMode {
    fn from(mode: AccessModeArg) -> AccessMode {
        match mode {
            AccessModeArg::ReadWrite => AccessMode::ReadWrite,
            AccessModeArg::ReadOnly => AccessMode::ReadOnly,
        }
    }
}

/// `cairn backup-location create` flags (Velero's names).
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The location's name.
    name: String,
    /// `aws` (S3 or S3-compatible) or `local` (a directory on the server's machine).
    #[arg(long, value_enum)]
    provider: ProviderArg,
    /// The bucket; for `local`, the absolute directory.
    #[arg(long)]
    bucket: String,
    /// A key prefix inside the bucket.
    #[arg(long)]
    prefix: Option<String>,
    /// Provider settings, key=value comma-separated: region, s3Url (an S3-compatible endpoint), profile,
    /// s3ForcePathStyle (accepted as Velero's guides write it; Cairn always uses path-style requests).
    #[arg(long, value_delimiter = ',')]
    config: Vec<String>,
    /// The Secret (in the server's namespace) and key holding an AWS credentials file: SECRET=KEY.
    #[arg(long)]
    credential: Option<String>,
    /// Make it the location backups go to when they name none.
    #[arg(long)]
    default: bool,
    /// ReadWrite (default) or ReadOnly (restores and sync only).
    #[arg(long, value_enum)]
    access_mode: Option<AccessModeArg>,
    /// How often the bucket is synchronised with the cluster (Go duration; 0s disables); default: the server's.
    #[arg(long)]
    backup_sync_period: Option<String>,
    /// How often availability is checked (Go duration); default: the server's.
    #[arg(long)]
    validation_frequency: Option<String>,
    /// The layout of the backups written here that name none: `velero` also writes each in Velero's layout
    /// (gzip), so a Velero server pointed at the bucket restores it; default `cairn`.
    #[arg(long, value_enum)]
    backup_format: Option<BackupFormatArg>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// `cairn backup-location set` flags.
#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// The location.
    name: String,
    /// Make it the default (`--default=false` unsets it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    default: Option<bool>,
    /// ReadWrite or ReadOnly.
    #[arg(long, value_enum)]
    access_mode: Option<AccessModeArg>,
    /// The Secret and key holding an AWS credentials file: SECRET=KEY.
    #[arg(long)]
    credential: Option<String>,
    /// The layout of the backups written here that name none: `cairn` or `velero`.
    #[arg(long, value_enum)]
    backup_format: Option<BackupFormatArg>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// Bucket layouts on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackupFormatArg {
    /// Cairn's only.
    Cairn,
    /// Cairn's and Velero's.
    Velero,
}

impl From<BackupFormatArg> for BackupFormat {
    fn from(format: BackupFormatArg) -> BackupFormat {
        match format {
            BackupFormatArg::Cairn => BackupFormat::Cairn,
            BackupFormatArg::Velero => BackupFormat::Velero,
        }
    }
}

/// `SECRET=KEY`, checked.
fn credential(text: &str) -> anyhow::Result<SecretKeySelector> {
    let Some((name, key)) = text.split_once('=').filter(|(n, k)| !n.trim().is_empty() && !k.trim().is_empty()) else {
        bail!("--credential {text:?}: write SECRET=KEY, e.g. cloud-credentials=cloud");
    };
    check_name("secret", name.trim())?;
    Ok(SecretKeySelector { name: name.trim().to_owned(), key: key.trim().to_owned() })
}

/// `k=v,k=v`, checked.
fn config(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut config = BTreeMap::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                config.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            _ => bail!("--config {pair:?}: write key=value, e.g. region=eu-west-1,s3Url=https://minio.example:9000"),
        }
    }
    Ok(config)
}

fn duration_flag(flag: &str, value: &Option<String>) -> anyhow::Result<Option<String>> {
    if let Some(text) = value {
        parse_duration(text).with_context(|| format!("--{flag}"))?;
    }
    Ok(value.clone())
}

impl CreateArgs {
    /// Validates the flags into a BackupStorageLocation, checked as the server will read it; nothing is
    /// created when they are wrong.
    fn location(&self) -> anyhow::Result<BackupStorageLocation> {
        check_name("backup storage location", &self.name)?;
        let bucket = self.bucket.trim();
        match self.provider {
            ProviderArg::Local if !bucket.starts_with('/') => bail!(
                "--bucket {bucket:?}: for provider local it is an absolute directory on the server's machine, e.g. /var/lib/cairn/backups"
            ),
            ProviderArg::Aws if bucket.is_empty() || bucket.contains('/') => bail!(
                "--bucket {bucket:?}: write the bucket's name alone (e.g. my-backups) and any key prefix with --prefix"
            ),
            _ => {}
        }
        let location = BackupStorageLocation {
            metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
            spec: BackupStorageLocationSpec {
                provider: match self.provider {
                    ProviderArg::Aws => "aws".into(),
                    ProviderArg::Local => "local".into(),
                },
                object_storage: ObjectStorage {
                    bucket: bucket.to_owned(),
                    prefix: self.prefix.clone().map(|p| p.trim_matches('/').to_owned()).filter(|p| !p.is_empty()),
                    ca_cert: None,
                },
                config: config(&self.config)?,
                credential: self.credential.as_deref().map(credential).transpose()?,
                default: self.default,
                access_mode: self.access_mode.map(AccessMode::from).unwrap_or_default(),
                backup_sync_period: duration_flag("backup-sync-period", &self.backup_sync_period)?,
                validation_frequency: duration_flag("validation-frequency", &self.validation_frequency)?,
                backup_format: self.backup_format.map(BackupFormat::from),
            },
            status: None,
        };
        backup_core::store::Location::from_spec(&location.spec, &self.name)?;
        Ok(location)
    }
}

/// Unsets `default` on every location but `keep`; returns the names changed. Called before `keep` becomes
/// the default, so that two defaults never exist.
async fn unset_other_defaults(keep: &str, server: &ServerApi) -> anyhow::Result<Vec<String>> {
    let mut changed = Vec::new();
    for location in server.list::<BackupStorageLocation>().await? {
        let name = location.name_any();
        if location.spec.default && name != keep {
            server.merge_patch::<BackupStorageLocation>(&name, &json!({"spec": {"default": false}})).await?;
            changed.push(name);
        }
    }
    Ok(changed)
}

/// Makes `previous` the default again after making another one the default failed (best effort: the
/// failure that led here is what the person reads).
async fn restore_defaults(previous: &[String], server: &ServerApi) {
    for name in previous {
        let _ = server.merge_patch::<BackupStorageLocation>(name, &json!({"spec": {"default": true}})).await;
    }
}

/// ` ("old" no longer the default)`, when another location was.
fn replaced_text(previous: &[String]) -> String {
    if previous.is_empty() {
        return String::new();
    }
    let names: Vec<String> = previous.iter().map(|n| format!("{n:?}")).collect();
    format!(" ({} no longer the default)", names.join(", "))
}

/// The location with anything that looks like credentials in its config values hidden (an s3Url with
/// `user:secret@`, which the server refuses to use but the object may hold).
fn redacted(mut location: BackupStorageLocation) -> BackupStorageLocation {
    for value in location.spec.config.values_mut() {
        *value = backup_core::store::redact_credentials(value);
    }
    location
}

fn locations_table(locations: &[BackupStorageLocation]) -> String {
    let mut rows = vec![
        ["NAME", "PROVIDER", "BUCKET/PREFIX", "PHASE", "LAST VALIDATED", "ACCESS MODE", "DEFAULT"]
            .map(String::from)
            .to_vec(),
    ];
    for l in locations {
        let storage = &l.spec.object_storage;
        let status = l.status.clone().unwrap_or_default();
        rows.push(vec![
            l.name_any(),
            l.spec.provider.clone(),
            match &storage.prefix {
                Some(prefix) => format!("{}/{prefix}", storage.bucket),
                None => storage.bucket.clone(),
            },
            match status.phase {
                Some(LocationPhase::Available) => "Available".into(),
                Some(LocationPhase::Unavailable) => "Unavailable".into(),
                None => "Unknown".into(),
            },
            time_text(status.last_validation_time.as_ref()),
            match l.spec.access_mode {
                AccessMode::ReadWrite => "ReadWrite".into(),
                AccessMode::ReadOnly => "ReadOnly".into(),
            },
            if l.spec.default { "true".into() } else { String::new() },
        ]);
    }
    table(&rows)
}

async fn create(args: CreateArgs, server: &ServerApi) -> anyhow::Result<()> {
    let location = args.location()?;
    let previous = if args.default {
        // An existing name would be refused by the create below, but only after the defaults changed.
        match server.get::<BackupStorageLocation>(&args.name).await {
            Err(ClientError::NotFound { .. }) => {}
            Ok(_) => {
                return Err(ClientError::AlreadyExists {
                    kind: "BackupStorageLocation".into(),
                    name: args.name.clone(),
                    namespace: server.namespace().to_owned(),
                }
                .into());
            }
            Err(other) => return Err(other.into()),
        }
        unset_other_defaults(&args.name, server).await?
    } else {
        Vec::new()
    };
    let created = match server.create(&location).await {
        Ok(created) => printable(created),
        Err(error) => {
            restore_defaults(&previous, server).await;
            return Err(error.into());
        }
    };
    args.output.print(&created, |l| {
        let default = if l.spec.default { format!(", the default{}", replaced_text(&previous)) } else { String::new() };
        format!(
            "Backup storage location {:?} created{default}. `cairn backup-location get` shows whether the server can reach it.\n",
            l.name_any()
        )
    })
}

async fn set(args: SetArgs, server: &ServerApi) -> anyhow::Result<()> {
    if args.default.is_none() && args.access_mode.is_none() && args.credential.is_none() && args.backup_format.is_none()
    {
        bail!(
            "nothing to change for backup storage location {:?}: pass --default, --access-mode, --credential or --backup-format",
            args.name
        );
    }
    server.get::<BackupStorageLocation>(&args.name).await?;
    let mut spec = serde_json::Map::new();
    if let Some(default) = args.default {
        spec.insert("default".into(), json!(default));
    }
    if let Some(mode) = args.access_mode {
        spec.insert("accessMode".into(), serde_json::to_value(AccessMode::from(mode))?);
    }
    if let Some(text) = &args.credential {
        spec.insert("credential".into(), serde_json::to_value(credential(text)?)?);
    }
    if let Some(format) = args.backup_format {
        spec.insert("backupFormat".into(), serde_json::to_value(BackupFormat::from(format))?);
    }
    let previous =
        if args.default == Some(true) { unset_other_defaults(&args.name, server).await? } else { Vec::new() };
    let updated = match server.merge_patch::<BackupStorageLocation>(&args.name, &json!({ "spec": spec })).await {
        Ok(updated) => printable(updated),
        Err(error) => {
            restore_defaults(&previous, server).await;
            return Err(error.into());
        }
    };
    args.output.print(&updated, |l| {
        format!("Backup storage location {:?} updated{}.\n", l.name_any(), replaced_text(&previous))
    })
}

async fn delete(name: &str, confirmed: bool, output: OutputFormat, server: &ServerApi) -> anyhow::Result<()> {
    let location = server.get::<BackupStorageLocation>(name).await?;
    let warning = if location.spec.default { " It is the default location." } else { "" };
    confirm(
        confirmed,
        &format!("backup storage location {name:?}"),
        &format!("Delete backup storage location {name:?}? The data in it is kept.{warning}"),
    )?;
    server.delete::<BackupStorageLocation>(name).await?;
    output.print(&printable(location), |l| {
        let mut text = format!("Backup storage location {name:?} deleted; the data in it is kept.\n");
        if l.spec.default {
            text.push_str(
                "It was the default: make another one the default with `cairn backup-location set NAME --default`.\n",
            );
        }
        text
    })
}

/// Runs a `cairn backup-location` subcommand against the server.
pub(crate) async fn run(command: LocationCommand, server: &ServerApi) -> anyhow::Result<bool> {
    match command {
        LocationCommand::Create(args) => create(args, server).await?,
        LocationCommand::Get { names, output } => {
            let locations = server.get_named_or_all::<BackupStorageLocation>(&names).await?;
            let locations: Vec<BackupStorageLocation> = locations.into_iter().map(printable).map(redacted).collect();
            output.print(&locations, |l| locations_table(l))?;
        }
        LocationCommand::Set(args) => set(args, server).await?,
        LocationCommand::Delete { name, confirm, output } => delete(&name, confirm, output, server).await?,
    }
    Ok(true)
}
