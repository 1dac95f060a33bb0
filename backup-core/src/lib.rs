//! Cairn's library: everything that knows Kubernetes, archives and object stores.
//!
//! The binaries (`backup-server`, `backup-cli`) parse arguments and present results; every decision and
//! every byte written to a cluster or a bucket goes through this crate. See `ARCHITECTURE.md` for the map.

pub mod archive;
pub mod backup;
pub mod install;
pub mod restore;
pub mod schedule;
pub mod selection;
pub mod store;

/// Cairn's version, as shown by `cairn version` and `backup-server --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
