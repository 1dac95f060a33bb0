//! The CLI's side of a Cairn server (`cairn` in server mode). Talking to it through its `cairn.dev/v1` objects: whether a cluster serves them, reading and
//! writing them in the server's namespace with errors a person can act on, following an object until it
//! reaches a phase, whether a server runs at all (its Lease), which storage location a backup goes to, and
//! the one-shot requests the server answers (its version, download links, deletions).

mod detect;
mod error;
mod liveness;
mod locations;
mod objects;
mod requests;

pub(crate) use detect::serves_cairn_api;
pub(crate) use error::ClientError;
pub(crate) use objects::{CairnObject, ServerApi};
pub(crate) use requests::ServerStatus;
