//! Talking to a Cairn server through its `cairn.dev/v1` objects: whether a cluster serves them, reading and
//! writing them in the server's namespace with errors a person can act on, following an object until it
//! reaches a phase, whether a server runs at all (its Lease), which storage location a backup goes to, and
//! the one-shot requests the server answers (its version, download links, deletions).

mod detect;
mod error;
mod liveness;
mod locations;
mod objects;
mod requests;

pub use detect::serves_cairn_api;
pub use error::ClientError;
pub use liveness::{LeaseState, SERVER_LEASE, STATUS_PROBE_TIMEOUT};
pub use locations::{LocationUse, check_access, choose_location};
pub use objects::{CairnObject, FOLLOW_PATIENCE, ServerApi};
pub use requests::ServerStatus;
