//! Container images built here, without a registry: an OCI image layout (one uncompressed layer of the given
//! files, a config, a manifest, an index) written as a tar archive that the node's runtime imports. The test
//! images are a pause image and a shell (Debian's static busybox) and Cairn's server (the built binary and
//! the shared libraries it links), with the `cairn` CLI beside it for the image agent.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::EnvError;

/// A file of an image: where it goes, and its content (a host file, or a symlink target).
#[derive(Debug, Clone)]
pub enum ImageFile {
    /// The host file's bytes and mode at `path` in the image.
    Copy {
        /// The host file.
        from: PathBuf,
        /// Its path in the image, without a leading `/`.
        path: String,
    },
    /// A symbolic link at `path` to `target`.
    Link {
        /// Its path in the image, without a leading `/`.
        path: String,
        /// What it points to.
        target: String,
    },
    /// An empty directory at `path`, writable by everyone (a `/tmp`).
    Directory {
        /// Its path in the image, without a leading `/`.
        path: String,
    },
}

/// An image to build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Its full name, e.g. `cairn.dev/test/shell:1`.
    pub name: String,
    /// Its entrypoint.
    pub entrypoint: Vec<String>,
    /// Its files.
    pub files: Vec<ImageFile>,
    /// When it was built (its config's `created`, RFC 3339), if it says.
    pub created: Option<String>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> EnvError {
    move |error| EnvError::Io { what, error }
}

/// The image's only layer: an uncompressed tar of its files.
fn layer(files: &[ImageFile]) -> Result<Vec<u8>, EnvError> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut directories = BTreeSet::new();
    for file in files {
        let path = match file {
            ImageFile::Copy { path, .. } | ImageFile::Link { path, .. } | ImageFile::Directory { path } => path,
        };
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            directories.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    for dir in &directories {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty()).map_err(io(format!("adding {}", dir.display())))?;
    }
    for file in files {
        let mut header = tar::Header::new_gnu();
        let added = match file {
            ImageFile::Copy { from, path } => {
                use std::os::unix::fs::PermissionsExt;
                let content = std::fs::read(from).map_err(io(format!("reading {}", from.display())))?;
                let mode = std::fs::metadata(from).map_err(io(format!("reading {}", from.display())))?.permissions();
                header.set_mode(mode.mode() & 0o7777);
                header.set_size(content.len() as u64);
                tar.append_data(&mut header, path, content.as_slice())
            }
            ImageFile::Link { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mode(0o777);
                tar.append_link(&mut header, path, target)
            }
            ImageFile::Directory { path } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o1777);
                header.set_size(0);
                tar.append_data(&mut header, path, std::io::empty())
            }
        };
        added.map_err(io(format!("adding {file:?} to an image layer")))?;
    }
    tar.into_inner().map_err(io("finishing an image layer".into()))
}

/// The image as an OCI image layout archive, ready for `ctr images import`.
pub fn archive(spec: &ImageSpec) -> Result<Vec<u8>, EnvError> {
    let layer = layer(&spec.files)?;
    let layer_digest = digest(&layer);
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": spec.entrypoint,
            "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    if let Some(created) = &spec.created {
        config["created"] = json!(created);
    }
    let config = serde_json::to_vec(&config).expect("a config serializes");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .expect("a manifest serializes");
    let tag = spec.name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": tag},
        }],
    }))
    .expect("an index serializes");
    let mut out = tar::Builder::new(Vec::new());
    let mut add = |path: String, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        out.append_data(&mut header, path, bytes)
    };
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", digest(bytes).trim_start_matches("sha256:"));
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io("writing an image".into()))?;
    add("index.json".into(), &index).map_err(io("writing an image".into()))?;
    for bytes in [&manifest, &config, &layer] {
        add(blob(bytes), bytes).map_err(io("writing an image".into()))?;
    }
    out.into_inner().map_err(io("writing an image".into()))
}

/// Imports the image into the runtime listening on `socket`, in the namespace the kubelet uses.
pub fn import(spec: &ImageSpec, socket: &Path, work_dir: &Path) -> Result<(), EnvError> {
    let file = work_dir.join(format!("{}.oci.tar", spec.name.replace(['/', ':'], "_")));
    std::fs::write(&file, archive(spec)?).map_err(io(format!("writing {}", file.display())))?;
    let output = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(&file)
        .output()
        .map_err(io("running ctr (Debian's containerd package)".into()))?;
    if !output.status.success() {
        return Err(EnvError::Io {
            what: format!("importing image {}: {}", spec.name, String::from_utf8_lossy(&output.stderr).trim()),
            error: std::io::ErrorKind::Other.into(),
        });
    }
    Ok(())
}

/// The shared libraries `binary` links (from `ldd`), with the dynamic loader: what an image needs beside it.
pub fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>, EnvError> {
    let output = Command::new("ldd").arg(binary).output().map_err(io("running ldd".into()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')).map(PathBuf::from))
        .collect())
}

/// Debian's static busybox.
pub const BUSYBOX: &str = "/bin/busybox";
/// The sandbox image the node's runtime is configured with.
pub const PAUSE_IMAGE: &str = "cairn.dev/test/pause:1";
/// A shell image: busybox, with `sh` (for exec hooks and commands).
pub const SHELL_IMAGE: &str = "cairn.dev/test/shell:1";

/// The pause image: busybox sleeping forever.
pub fn pause_image() -> ImageSpec {
    ImageSpec {
        name: PAUSE_IMAGE.into(),
        entrypoint: vec!["/bin/busybox".into(), "sleep".into(), "2147483647".into()],
        files: vec![ImageFile::Copy { from: BUSYBOX.into(), path: "bin/busybox".into() }],
        created: None,
    }
}

/// The shell image: busybox as `sh`, `sleep`, `cat`, `echo` and `ls`, running `sh` by default.
pub fn shell_image() -> ImageSpec {
    let mut files = vec![ImageFile::Copy { from: BUSYBOX.into(), path: "bin/busybox".into() }];
    for applet in ["sh", "sleep", "cat", "echo", "ls", "touch", "date"] {
        files.push(ImageFile::Link { path: format!("bin/{applet}"), target: "busybox".into() });
    }
    files.push(ImageFile::Directory { path: "tmp".into() });
    ImageSpec { name: SHELL_IMAGE.into(), entrypoint: vec!["/bin/sh".into()], files, created: None }
}

/// An image of a built binary (`backup-server`, ...) with the libraries it links, as `name`.
pub fn binary_image(name: &str, binary: &Path) -> Result<ImageSpec, EnvError> {
    let file_name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("binary").to_owned();
    let mut files = vec![ImageFile::Copy { from: binary.to_path_buf(), path: format!("bin/{file_name}") }];
    for library in linked_libraries(binary)? {
        let path = library.display().to_string().trim_start_matches('/').to_owned();
        let real = std::fs::canonicalize(&library).map_err(io(format!("resolving {}", library.display())))?;
        files.push(ImageFile::Copy { from: real, path });
    }
    files.push(ImageFile::Directory { path: "tmp".into() });
    Ok(ImageSpec { name: name.into(), entrypoint: vec![format!("/bin/{file_name}")], files, created: None })
}

/// The CA certificates the release image (distroless) carries, from the host.
const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Cairn's server image as `name`: `binary` and its libraries, and the CA certificates the release image
/// (deploy/Dockerfile, distroless) carries and the S3 client loads.
pub fn server_image(name: &str, binary: &Path) -> Result<ImageSpec, EnvError> {
    let mut image = binary_image(name, binary)?;
    image.files.push(ImageFile::Copy { from: CA_CERTIFICATES.into(), path: CA_CERTIFICATES[1..].into() });
    Ok(image)
}

/// Cairn's image as the release builds it (deploy/Dockerfile), as `name`: [`server_image`] of `server`, and
/// `cli` (the `cairn` binary) at the path the image agent's DaemonSet runs
/// ([`IMAGE_AGENT_BINARY`](backup_core::install::IMAGE_AGENT_BINARY)), with the libraries it links that the
/// server does not.
pub fn cairn_image(name: &str, server: &Path, cli: &Path) -> Result<ImageSpec, EnvError> {
    let mut image = server_image(name, server)?;
    let in_image = |file: &ImageFile| match file {
        ImageFile::Copy { path, .. } | ImageFile::Link { path, .. } | ImageFile::Directory { path } => path.clone(),
    };
    let mut paths: BTreeSet<String> = image.files.iter().map(in_image).collect();
    let mut add = |file: ImageFile| {
        if paths.insert(in_image(&file)) {
            image.files.push(file);
        }
    };
    add(ImageFile::Copy { from: cli.to_path_buf(), path: backup_core::install::IMAGE_AGENT_BINARY[1..].to_owned() });
    for library in linked_libraries(cli)? {
        let real = std::fs::canonicalize(&library).map_err(io(format!("resolving {}", library.display())))?;
        add(ImageFile::Copy { from: real, path: library.display().to_string().trim_start_matches('/').to_owned() });
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_archive_holds_a_layout_whose_digests_match_their_blobs() {
        let archive = archive(&shell_image()).unwrap();
        let mut reader = tar::Archive::new(archive.as_slice());
        let mut names = Vec::new();
        for entry in reader.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(digest(&bytes), format!("sha256:{hex}"));
            }
            names.push(path);
        }
        assert_eq!(&names[..2], ["oci-layout", "index.json"]);
        assert_eq!(names.len(), 5);
    }

    #[test]
    fn cairn_image_holds_the_cli_where_the_image_agent_runs_it_and_no_file_twice() {
        let image = cairn_image("cairn.dev/test/cairn:1", Path::new(BUSYBOX), Path::new("/bin/ls")).unwrap();
        let paths: Vec<&str> = image
            .files
            .iter()
            .map(|file| match file {
                ImageFile::Copy { path, .. } | ImageFile::Link { path, .. } | ImageFile::Directory { path } => {
                    path.as_str()
                }
            })
            .collect();
        assert!(paths.contains(&"usr/local/bin/cairn") && paths.contains(&"bin/busybox"), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("libc.so")), "the CLI's libraries: {paths:?}");
        assert_eq!(paths.iter().collect::<BTreeSet<_>>().len(), paths.len(), "{paths:?}");
        assert_eq!(image.entrypoint, ["/bin/busybox"]);
    }
}
