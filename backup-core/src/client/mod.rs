//! Talking to a Cairn server through its `cairn.dev/v1` objects: whether a cluster serves them, reading and
//! writing them in the server's namespace with errors a person can act on, following an object until it
//! reaches a phase, and the one-shot requests the server answers (its version, download links, deletions).

mod detect;
mod error;
mod objects;
mod requests;
mod retry;

pub use detect::serves_cairn_api;
pub use error::ClientError;
pub use objects::{CairnObject, ServerApi};
pub use requests::ServerStatus;
