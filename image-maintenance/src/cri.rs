//! The container runtime of this machine, over CRI on its Unix socket (`unix:///run/containerd/containerd.sock`):
//! its images (with the pinned flag), the images its containers use (running or exited), its sandbox (pause)
//! image, and removal. The runtime protects nothing (it removes an image in use, the pause image, and every tag
//! of an image asked for by one): what must be kept is decided before anything is asked to go ([`crate::prune`]).

use std::collections::{BTreeMap, BTreeSet};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerState, ImageSpec, ImageStatusRequest, ListContainersRequest, ListImagesRequest, RemoveImageRequest,
    StatusRequest, image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{ImageError, prune::RuntimeImage};

/// A connection to a runtime.
#[derive(Debug, Clone)]
pub struct Runtime {
    endpoint: String,
    images: ImageServiceClient<Channel>,
    runtime: RuntimeServiceClient<Channel>,
}

fn failed(what: &str, endpoint: &str, status: tonic::Status) -> ImageError {
    ImageError::Invalid(format!("{what} on the container runtime at {endpoint} failed: {}", status.message()))
}

impl Runtime {
    /// Connects to `endpoint`, `unix:///path/to/socket` (kubelet's `--container-runtime-endpoint` form).
    pub async fn connect(endpoint: &str) -> Result<Runtime, ImageError> {
        let Some(path) = endpoint.strip_prefix("unix://") else {
            return Err(ImageError::Invalid(format!(
                "runtime endpoint {endpoint:?}: write unix:///PATH, e.g. unix:///run/containerd/containerd.sock"
            )));
        };
        let path = path.to_owned();
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        });
        let channel = Endpoint::from_static("http://[::]")
            .connect_with_connector(connector)
            .await
            .map_err(|e| {
                let cause = cairn_kube::cause::chain_text(&e);
                ImageError::Invalid(format!(
                    "cannot reach the container runtime at {endpoint}: {cause}; is it running, and may this user open its socket?"
                ))
            })?;
        Ok(Runtime {
            endpoint: endpoint.to_owned(),
            images: ImageServiceClient::new(channel.clone()),
            runtime: RuntimeServiceClient::new(channel),
        })
    }

    /// Every image the runtime holds, each with its build time when the runtime's verbose image status
    /// gives its OCI config (containerd does).
    pub async fn images(&mut self) -> Result<Vec<RuntimeImage>, ImageError> {
        let listed = self
            .images
            .list_images(ListImagesRequest { filter: None })
            .await
            .map_err(|s| failed("listing images", &self.endpoint, s))?;
        let mut images = Vec::new();
        for i in listed.into_inner().images {
            let created = self.built(&i.id).await?;
            images.push(RuntimeImage {
                id: i.id,
                tags: i.repo_tags,
                digests: i.repo_digests,
                size_bytes: i.size,
                pinned: i.pinned,
                created,
            });
        }
        Ok(images)
    }

    /// When the image `id` was built: `created` of its OCI config, from the verbose image status.
    async fn built(&mut self, id: &str) -> Result<Option<jiff::Timestamp>, ImageError> {
        let image = ImageSpec { image: id.to_owned(), ..ImageSpec::default() };
        let status = match self.images.image_status(ImageStatusRequest { image: Some(image), verbose: true }).await {
            Ok(status) => status.into_inner(),
            // Removed since it was listed: nothing to date.
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => return Err(failed(&format!("reading the status of image {id}"), &self.endpoint, status)),
        };
        let info: serde_json::Value =
            status.info.get("info").and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
        Ok(info["imageSpec"]["created"].as_str().and_then(|c| c.parse().ok()))
    }

    /// The images the runtime's containers (running or exited) use, by image ID, each with its containers'
    /// names.
    pub async fn images_in_use(&mut self) -> Result<BTreeMap<String, Vec<String>>, ImageError> {
        let listed = self
            .runtime
            .list_containers(ListContainersRequest { filter: None })
            .await
            .map_err(|s| failed("listing containers", &self.endpoint, s))?;
        let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for container in listed.into_inner().containers {
            let exited = container.state == ContainerState::ContainerExited as i32;
            let name = container.metadata.map(|m| m.name).unwrap_or(container.id);
            let name = if exited { format!("{name} (exited)") } else { name };
            let image = container.image.map(|i| i.image).unwrap_or_default();
            // The ID, the reference and the spec's image are often the same string: one entry per container.
            let keys: BTreeSet<String> = [container.image_id, container.image_ref, image].into_iter().collect();
            for key in keys.into_iter().filter(|k| !k.is_empty()) {
                used.entry(key).or_default().push(name.clone());
            }
        }
        Ok(used)
    }

    /// The sandbox (pause) image the runtime's configuration names, when it says (containerd does, in its
    /// verbose status).
    pub async fn sandbox_image(&mut self) -> Result<Option<String>, ImageError> {
        let status = self
            .runtime
            .status(StatusRequest { verbose: true })
            .await
            .map_err(|s| failed("reading the status", &self.endpoint, s))?;
        let info = status.into_inner().info;
        let config: serde_json::Value =
            info.get("config").and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
        let named = config["sandboxImage"].as_str().or_else(|| config["sandbox_image"].as_str());
        Ok(named.map(str::to_owned))
    }

    /// Removes the image `id` (every tag of it).
    pub async fn remove(&mut self, id: &str) -> Result<(), ImageError> {
        let image = ImageSpec { image: id.to_owned(), ..ImageSpec::default() };
        self.images
            .remove_image(RemoveImageRequest { image: Some(image) })
            .await
            .map_err(|s| failed(&format!("removing image {id}"), &self.endpoint, s))?;
        Ok(())
    }
}
