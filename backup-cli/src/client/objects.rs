//! Reading and writing `cairn.dev` objects in the server's namespace, and following one until it reaches a
//! phase.

use cairn_kube::errors::{is_conflict, is_not_found};
use cairn_kube::{errors::ErrorKind, retry::retrying};
use std::{fmt::Debug, time::Duration};

use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    core::NamespaceResourceScope,
};
use serde::{Serialize, de::DeserializeOwned};

use super::ClientError;
use cairn_kube::duration::format_duration;

/// How long [`ServerApi::follow`] keeps reading through connection failures and 429/5xx answers before it
/// gives up.
pub(super) const FOLLOW_PATIENCE: Duration = Duration::from_secs(60);

/// A namespaced object of Cairn's API (or any namespaced object with a static type).
pub(crate) trait CairnObject:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
}

impl<K> CairnObject for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static
{
}

/// A Cairn server's objects, in the namespace it runs in.
#[derive(Clone)]
pub(crate) struct ServerApi {
    client: Client,
    namespace: String,
}

impl Debug for ServerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerApi").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl ServerApi {
    /// The objects in `namespace`, reached with `client`.
    pub(crate) fn new(client: Client, namespace: impl Into<String>) -> ServerApi {
        ServerApi { client, namespace: namespace.into() }
    }

    /// The server's namespace.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Kubernetes client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn api<K: CairnObject>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn kind<K: CairnObject>() -> String {
        K::kind(&()).into_owned()
    }

    fn not_found<K: CairnObject>(&self, name: &str) -> ClientError {
        ClientError::NotFound { kind: Self::kind::<K>(), name: name.to_owned(), namespace: self.namespace.clone() }
    }

    /// The object `name`.
    pub(crate) async fn get<K: CairnObject>(&self, name: &str) -> Result<K, ClientError> {
        let api = self.api::<K>();
        match retrying(|| api.get_opt(name)).await {
            Ok(Some(object)) => Ok(object),
            Ok(None) => Err(self.not_found::<K>(name)),
            Err(error) => Err(self.failed::<K>("reading", name, &error)),
        }
    }

    /// The objects `names`, in that order, or every object of the kind when `names` is empty (what `get`
    /// commands show).
    pub(crate) async fn get_named_or_all<K: CairnObject>(&self, names: &[String]) -> Result<Vec<K>, ClientError> {
        if names.is_empty() {
            return self.list().await;
        }
        let mut objects = Vec::with_capacity(names.len());
        for name in names {
            objects.push(self.get(name).await?);
        }
        Ok(objects)
    }

    /// Every object of the kind, sorted by name.
    pub(crate) async fn list<K: CairnObject>(&self) -> Result<Vec<K>, ClientError> {
        self.list_selected(None).await
    }

    /// Every object of the kind whose labels match `selector` (the API server's `labelSelector` form, such as
    /// `cairn.dev/backup-name=nightly`), or every object without one; sorted by name.
    pub(crate) async fn list_selected<K: CairnObject>(&self, selector: Option<&str>) -> Result<Vec<K>, ClientError> {
        let api = self.api::<K>();
        let params = match selector {
            Some(selector) => ListParams::default().labels(selector),
            None => ListParams::default(),
        };
        let list = retrying(|| api.list(&params)).await.map_err(|error| {
            ClientError::api(format!("listing {}s in namespace {:?}", Self::kind::<K>(), self.namespace), &error)
        })?;
        let mut items = list.items;
        items.sort_by_key(|object| object.name_any());
        Ok(items)
    }

    /// Creates `object`; an existing name or a missing namespace is an error that says so.
    pub(crate) async fn create<K: CairnObject>(&self, object: &K) -> Result<K, ClientError> {
        let name = object.meta().name.clone().or_else(|| object.meta().generate_name.clone()).unwrap_or_default();
        let api = self.api::<K>();
        let params = PostParams::default();
        match retrying(|| api.create(&params, object)).await {
            Ok(created) => Ok(created),
            Err(error) if is_conflict(&error) => {
                Err(ClientError::AlreadyExists { kind: Self::kind::<K>(), name, namespace: self.namespace.clone() })
            }
            Err(error) if is_not_found(&error) => Err(ClientError::NoNamespace { namespace: self.namespace.clone() }),
            Err(error) => Err(self.failed::<K>("creating", &name, &error)),
        }
    }

    /// Applies a JSON merge patch to the object `name`.
    pub(crate) async fn merge_patch<K: CairnObject>(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<K, ClientError> {
        let api = self.api::<K>();
        let params = PatchParams::default();
        let patch = Patch::Merge(patch);
        match retrying(|| api.patch(name, &params, &patch)).await {
            Ok(patched) => Ok(patched),
            Err(error) if is_not_found(&error) => Err(self.not_found::<K>(name)),
            Err(error) => Err(self.failed::<K>("updating", name, &error)),
        }
    }

    /// Applies a JSON merge patch to the status of the object `name` (for what the server reads from status,
    /// such as a schedule's `lastSkipped`).
    pub(crate) async fn merge_patch_status<K: CairnObject>(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<K, ClientError> {
        let api = self.api::<K>();
        let params = PatchParams::default();
        let patch = Patch::Merge(patch);
        match retrying(|| api.patch_status(name, &params, &patch)).await {
            Ok(patched) => Ok(patched),
            Err(error) if is_not_found(&error) => Err(self.not_found::<K>(name)),
            Err(error) => Err(self.failed::<K>("updating the status of", name, &error)),
        }
    }

    /// Deletes the object `name`.
    pub(crate) async fn delete<K: CairnObject>(&self, name: &str) -> Result<(), ClientError> {
        let api = self.api::<K>();
        let params = DeleteParams::default();
        match retrying(|| api.delete(name, &params)).await {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Err(self.not_found::<K>(name)),
            Err(error) => Err(self.failed::<K>("deleting", name, &error)),
        }
    }

    /// Reads the object `name` every `every` and hands it to `done` until `done` returns true; then returns
    /// it. With a `timeout`, gives up after it with [`ClientError::TimedOut`]. The object's deletion ends the
    /// wait with [`ClientError::Vanished`]; connection failures and the API server's 429 and 5xx answers are
    /// retried until they have lasted [`FOLLOW_PATIENCE`]; any other failure ends the wait at once.
    pub(crate) async fn follow<K: CairnObject>(
        &self,
        name: &str,
        every: Duration,
        timeout: Option<Duration>,
        mut done: impl FnMut(&K) -> bool,
    ) -> Result<K, ClientError> {
        let started = tokio::time::Instant::now();
        let api = self.api::<K>();
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            match api.get_opt(name).await {
                Ok(Some(object)) => {
                    failing_since = None;
                    if done(&object) {
                        return Ok(object);
                    }
                }
                Ok(None) => {
                    return Err(ClientError::Vanished {
                        kind: Self::kind::<K>(),
                        name: name.to_owned(),
                        namespace: self.namespace.clone(),
                    });
                }
                Err(error) if ErrorKind::of(&error).may_pass_later() => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= FOLLOW_PATIENCE {
                        return Err(ClientError::api(
                            format!(
                                "reading {} {name:?} in namespace {:?} (failing for {})",
                                Self::kind::<K>(),
                                self.namespace,
                                format_duration(FOLLOW_PATIENCE)
                            ),
                            &error,
                        ));
                    }
                }
                Err(error) => return Err(self.failed::<K>("reading", name, &error)),
            }
            if let Some(timeout) = timeout {
                let elapsed = started.elapsed();
                if elapsed >= timeout {
                    return Err(ClientError::TimedOut {
                        kind: Self::kind::<K>(),
                        name: name.to_owned(),
                        namespace: self.namespace.clone(),
                        timeout,
                    });
                }
                tokio::time::sleep(every.min(timeout - elapsed)).await;
            } else {
                tokio::time::sleep(every).await;
            }
        }
    }

    fn failed<K: CairnObject>(&self, verb: &str, name: &str, error: &kube::Error) -> ClientError {
        ClientError::api(format!("{verb} {} {name:?} in namespace {:?}", Self::kind::<K>(), self.namespace), error)
    }
}
