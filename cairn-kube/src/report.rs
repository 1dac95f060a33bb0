//! What a run (a backup, a restore, a drain) reports: its own log, kept for the person who asks for it later
//! and mirrored to `tracing`, and its problems, each a warning or an error about an object or a type. The
//! log holds one line per step, type or problem, never one per object.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something was left out, and the result is usable.
    Warning,
    /// Something asked for could not be done.
    Error,
}

/// A warning or error, with the object it concerns when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The resource type (`deployments.apps`), if the problem concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The namespace, if the problem concerns a namespaced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name, if the problem concerns one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What happened.
    pub reason: String,
}

impl Problem {
    /// A problem of the run as a whole, concerning no object.
    pub fn general(reason: impl Into<String>) -> Problem {
        Problem { resource: None, namespace: None, name: None, reason: reason.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.resource, &self.namespace, &self.name) {
            (Some(r), Some(ns), Some(n)) => write!(f, "{r} {ns}/{n}: {}", self.reason),
            (Some(r), None, Some(n)) => write!(f, "{r} {n}: {}", self.reason),
            (Some(r), _, None) => write!(f, "{r}: {}", self.reason),
            _ => f.write_str(&self.reason),
        }
    }
}

/// The log of one run.
#[derive(Debug, Default, Clone)]
pub struct RunLog {
    lines: Vec<String>,
}

impl RunLog {
    fn push(&mut self, level: &str, message: &str) {
        self.lines.push(format!("{} {level:<5} {message}", Timestamp::now()));
    }

    /// A step.
    pub fn info(&mut self, message: impl AsRef<str>) {
        tracing::info!("{}", message.as_ref());
        self.push("info", message.as_ref());
    }

    /// A warning.
    pub fn warn(&mut self, message: impl AsRef<str>) {
        tracing::warn!("{}", message.as_ref());
        self.push("warn", message.as_ref());
    }

    /// An error.
    pub fn error(&mut self, message: impl AsRef<str>) {
        tracing::error!("{}", message.as_ref());
        self.push("error", message.as_ref());
    }

    /// A problem, as a warning or an error line.
    pub fn problem(&mut self, severity: Severity, problem: &Problem) {
        match severity {
            Severity::Warning => self.warn(problem.to_string()),
            Severity::Error => self.error(problem.to_string()),
        }
    }

    /// The whole log as text.
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}
