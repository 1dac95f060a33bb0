//! Kubernetes plumbing shared by every Cairn domain (backups and restores, node maintenance, image
//! maintenance): clients and the one retry policy, what a failed request means, discovery, waits, leader
//! election, well-known names and types, durations, quantities, label selectors, commands run in pods, and what a run reports. No domain
//! lives here, and nothing here knows archives or object stores.

pub mod cause;
pub mod client;
pub mod discovery;
pub mod duration;
pub mod errors;
pub mod exec;
pub mod leader;
pub mod memory;
pub mod names;
pub mod quantity;
pub mod report;
pub mod resources;
pub mod retry;
pub mod selectors;
pub mod size;
