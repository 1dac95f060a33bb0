//! Cairn's integration tests: one test binary, so one environment (real control plane and S3 server)
//! serves the whole run. Each module holds the tests of one capability.

mod adversity;
mod backup;
mod control_plane;
mod discovery;
mod leader;
mod node;
mod object_store;
mod restore;
