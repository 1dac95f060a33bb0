//! `cairn schedule ...` (server only): Schedule objects, a cron expression and the Backup spec the server
//! stamps out each time it fires. Expressions are checked here, before anything is created.

use backup_core::schedule::{Firing, History, Schedule as CronSchedule, decide};
use cairn_api::{Schedule, ScheduleSpec};
use clap::{Args, Subcommand};
use kube::{ResourceExt, api::ObjectMeta};
use serde_json::json;

use crate::{
    backup::{SERVER_DEFAULT_TTL, SpecArgs, check_name, selector_text, spec_text},
    client::ServerApi,
    confirm::confirm,
    output::{OutputFormat, printable, table, time_text},
};

/// `cairn schedule` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Create a schedule: the server backs up on it (Velero's syntax: cron, @daily, @every 6h, CRON_TZ=).
    Create(Box<CreateArgs>),
    /// List schedules.
    Get {
        /// Only these schedules.
        names: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show one schedule.
    Describe {
        /// The schedule.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Stop schedules from creating backups.
    Pause {
        /// The schedules.
        #[arg(required = true)]
        names: Vec<String>,
        /// Output format: JSON and YAML print the schedules as they now are.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Let paused schedules create backups again.
    Unpause {
        /// The schedules.
        #[arg(required = true)]
        names: Vec<String>,
        /// Output format: JSON and YAML print the schedules as they now are.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Delete a schedule. The backups it made are kept, unless it owns them (useOwnerReferencesInBackup):
    /// Kubernetes then deletes their objects, their stored data stays, and bucket sync brings them back.
    Delete {
        /// The schedule.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        confirm: bool,
        /// Output format: JSON and YAML print the deleted schedule.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// `cairn schedule create` flags (Velero's names).
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The schedule's name; its backups are named `<NAME>-<YYYYMMDDhhmmss>`.
    name: String,
    /// When to back up: five cron fields ("0 3 * * *"), @daily, @every 6h, optionally after CRON_TZ=ZONE.
    #[arg(long)]
    schedule: String,
    #[command(flatten)]
    spec: SpecArgs,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    /// Make the schedule the owner of its Backup objects.
    #[arg(long)]
    use_owner_references_in_backup: bool,
    /// Skip the first firing after creation.
    #[arg(long)]
    skip_immediately: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

impl CreateArgs {
    /// Validates the flags into a Schedule object; nothing is created when they are wrong.
    fn schedule(&self) -> anyhow::Result<Schedule> {
        check_name("schedule", &self.name)?;
        self.schedule.parse::<CronSchedule>()?;
        Ok(Schedule {
            metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
            spec: ScheduleSpec {
                schedule: self.schedule.trim().to_owned(),
                template: self.spec.server_spec()?,
                use_owner_references_in_backup: self.use_owner_references_in_backup.then_some(true),
                paused: self.paused,
                skip_immediately: self.skip_immediately.then_some(true),
            },
            status: None,
        })
    }
}

/// When the schedule fires next, for people, as the server decides it (`decide`): `now` when a firing is due
/// (a new schedule without skipImmediately fires at once), a time, `<paused>`, or why it cannot be computed.
fn next_text(schedule: &Schedule) -> String {
    if schedule.spec.paused {
        return "<paused>".into();
    }
    let status = schedule.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let history = History {
        created: schedule.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now),
        last_backup: status.last_backup.map(|t| t.0),
        last_skipped: status.last_skipped.map(|t| t.0),
        skip_immediately: schedule.spec.skip_immediately.unwrap_or(false),
    };
    let decision = schedule.spec.schedule.parse::<CronSchedule>().and_then(|s| decide(&s, history, now, false));
    match decision {
        Ok(Firing::Fire { .. } | Firing::Skip { .. }) => "now".into(),
        Ok(Firing::Wait { next }) => next.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(error) => format!("<{error}>"),
    }
}

/// A TTL for people: itself, or `<server default>` when empty.
fn ttl_text(ttl: &str) -> String {
    if ttl.is_empty() { SERVER_DEFAULT_TTL.into() } else { ttl.to_owned() }
}

fn schedules_table(schedules: &[Schedule]) -> String {
    let mut rows = vec![
        ["NAME", "STATUS", "CREATED", "SCHEDULE", "BACKUP TTL", "LAST BACKUP", "SELECTOR", "PAUSED"]
            .map(String::from)
            .to_vec(),
    ];
    for s in schedules {
        rows.push(vec![
            s.name_any(),
            s.phase().as_str().to_owned(),
            time_text(s.metadata.creation_timestamp.as_ref()),
            s.spec.schedule.clone(),
            ttl_text(&s.spec.template.ttl),
            time_text(s.status.as_ref().and_then(|st| st.last_backup.as_ref())),
            selector_text(&s.spec.template.selection),
            s.spec.paused.to_string(),
        ]);
    }
    table(&rows)
}

fn describe_text(s: &Schedule) -> String {
    let status = s.status.clone().unwrap_or_default();
    let location = if s.spec.template.storage_location.is_empty() {
        "<default>"
    } else {
        s.spec.template.storage_location.as_str()
    };
    let mut text = format!(
        "Name:         {}\nNamespace:    {}\nPhase:        {}\n",
        s.name_any(),
        s.namespace().unwrap_or_default(),
        s.phase().as_str()
    );
    if !status.validation_errors.is_empty() {
        text.push_str("Validation errors:\n");
        for error in &status.validation_errors {
            text.push_str(&format!("  {error}\n"));
        }
    }
    text.push_str(&format!(
        "Paused:       {}\nSchedule:     {}\nNext backup:  {}\nLast backup:  {}\nLast skipped: {}\nOwns its backups:   {}\nSkip immediately:   {}\n\nBackup template:\n",
        s.spec.paused,
        s.spec.schedule,
        next_text(s),
        time_text(status.last_backup.as_ref()),
        time_text(status.last_skipped.as_ref()),
        s.spec.use_owner_references_in_backup.unwrap_or(false),
        s.spec.skip_immediately.unwrap_or(false),
    ));
    for line in spec_text(&s.spec.template, location).lines() {
        text.push_str(&if line.is_empty() { "\n".to_owned() } else { format!("  {line}\n") });
    }
    text
}

async fn create(args: CreateArgs, server: &ServerApi) -> anyhow::Result<()> {
    let schedule = args.schedule()?;
    args.spec.check_storage_location(server).await?;
    let created = printable(server.create(&schedule).await?);
    args.output.print(&created, |s| {
        let name = s.name_any();
        let next = if s.spec.paused {
            format!("It is paused; `cairn schedule unpause {name}` starts it.")
        } else {
            match next_text(s).as_str() {
                "now" => "Its first backup is made now, by the server.".to_owned(),
                next => format!("Next backup: {next} (unless skipped)."),
            }
        };
        format!("Schedule {name:?} created successfully. {next}\n")
    })
}

async fn set_paused(names: &[String], paused: bool, output: OutputFormat, server: &ServerApi) -> anyhow::Result<()> {
    let (verb, state) = if paused { ("paused", "paused") } else { ("unpaused", "running") };
    let mut results = Vec::with_capacity(names.len());
    let mut text = String::new();
    for name in names {
        let schedule = server.get::<Schedule>(name).await?;
        if schedule.spec.paused == paused {
            text.push_str(&format!("Schedule {name:?} is already {state}.\n"));
            results.push(printable(schedule));
            continue;
        }
        let mut changed = server.merge_patch::<Schedule>(name, &json!({"spec": {"paused": paused}})).await?;
        // Velero's skipImmediately also holds on unpause: the firing due now counts as skipped.
        if !paused && schedule.spec.skip_immediately == Some(true) {
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
            changed = server.merge_patch_status::<Schedule>(name, &json!({"status": {"lastSkipped": now}})).await?;
        }
        text.push_str(&format!("Schedule {name:?} {verb} successfully.\n"));
        results.push(printable(changed));
    }
    match results.as_slice() {
        [one] => output.print(one, |_| text.clone()),
        many => output.print(&many, |_| text.clone()),
    }
}

async fn delete(name: &str, confirmed: bool, output: OutputFormat, server: &ServerApi) -> anyhow::Result<()> {
    let schedule = server.get::<Schedule>(name).await?;
    confirm(
        confirmed,
        &format!("schedule {name:?}"),
        &format!(
            "Delete schedule {name:?}? Its backups are kept (owned ones lose their objects until sync restores them)."
        ),
    )?;
    server.delete::<Schedule>(name).await?;
    output.print(&printable(schedule), |s| {
        if s.spec.use_owner_references_in_backup == Some(true) {
            format!(
                "Schedule {name:?} deleted; the Backup objects it owns go with it (their stored data is kept in the bucket).\n"
            )
        } else {
            format!("Schedule {name:?} deleted; the backups it made are kept.\n")
        }
    })
}

/// Runs a `cairn schedule` subcommand against the server.
pub(crate) async fn run(command: ScheduleCommand, server: &ServerApi) -> anyhow::Result<bool> {
    match command {
        ScheduleCommand::Create(args) => create(*args, server).await?,
        ScheduleCommand::Get { names, output } => {
            let schedules = server.get_named_or_all::<Schedule>(&names).await?;
            let schedules: Vec<Schedule> = schedules.into_iter().map(printable).collect();
            output.print(&schedules, |s| schedules_table(s))?;
        }
        ScheduleCommand::Describe { name, output } => {
            output.print(&printable(server.get::<Schedule>(&name).await?), describe_text)?;
        }
        ScheduleCommand::Pause { names, output } => set_paused(&names, true, output, server).await?,
        ScheduleCommand::Unpause { names, output } => set_paused(&names, false, output, server).await?,
        ScheduleCommand::Delete { name, confirm, output } => delete(&name, confirm, output, server).await?,
    }
    Ok(true)
}
