//! Whether a cluster serves Cairn's API: the sign that a Cairn server is (or was) installed.

use cairn_kube::errors::is_not_found;
use kube::Client;

use cairn_kube::retry::retrying;

use super::ClientError;
use cairn_api::GROUP;

/// Whether the cluster serves `backups.cairn.dev/v1`. A cluster that does not know the group answers 404,
/// which is `Ok(false)`; any other failure is an error.
pub(crate) async fn serves_cairn_api(client: &Client) -> Result<bool, ClientError> {
    let group_version = format!("{GROUP}/v1");
    match retrying(|| client.list_api_group_resources(&group_version)).await {
        Ok(resources) => Ok(resources.resources.iter().any(|r| r.name == "backups")),
        Err(error) if is_not_found(&error) => Ok(false),
        Err(error) => Err(ClientError::api(format!("asking the cluster whether it serves {GROUP}"), &error)),
    }
}
