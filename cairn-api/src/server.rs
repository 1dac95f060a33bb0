//! The contract between the `cairn` CLI and `backup-server`: the Lease the server holds while it runs (the
//! CLI reads it to tell whether a server runs).

/// The Lease Cairn servers elect their leader on, in their namespace.
pub const SERVER_LEASE: &str = "cairn-server";
