//! Image references as the runtime and the kubelet spell them: `nginx`, `nginx:1.25`,
//! `registry.example:5000/team/app:v2@sha256:...`, parsed into domain, path, tag and digest, and normalized
//! (`docker.io/library/nginx:latest`) so that a pod's `image` and a node's `status.images` names compare.

use std::fmt;

/// The registry an image without one comes from.
const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    /// The registry (`docker.io` when the reference names none).
    pub domain: String,
    /// The repository path (`library/nginx` for `nginx` on Docker Hub).
    pub path: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest (`sha256:...`), if any.
    pub digest: Option<String>,
}

/// Why a reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not an image reference: {problem}")]
pub struct RefError {
    /// The reference.
    pub reference: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl ImageRef {
    /// Parses `reference` as the container runtime does.
    pub fn parse(reference: &str) -> Result<ImageRef, RefError> {
        let fail = |problem| RefError { reference: reference.to_owned(), problem };
        if reference.is_empty() || reference.chars().any(char::is_whitespace) {
            return Err(fail("it is empty or holds spaces"));
        }
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                let (algorithm, hex) = digest.split_once(':').ok_or_else(|| fail("the digest has no algorithm"))?;
                if algorithm.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(fail("the digest is not ALGORITHM:HEX"));
                }
                (name, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        let (domain, rest) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first.to_owned(), rest),
            _ => (DEFAULT_DOMAIN.to_owned(), name),
        };
        // A tag follows the last ':' after the last '/' (a registry's port comes before the first '/').
        let (path, tag) = match rest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some(tag.to_owned())),
            _ => (rest, None),
        };
        if path.is_empty() || path.split('/').any(str::is_empty) || path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(fail("the repository path is empty or holds capital letters"));
        }
        let tag_ok = |t: &str| {
            t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        if tag.as_deref().is_some_and(|t| t.is_empty() || !tag_ok(t)) {
            return Err(fail("the tag is empty or holds characters other than letters, digits, '_', '.' and '-'"));
        }
        let path =
            if domain == DEFAULT_DOMAIN && !path.contains('/') { format!("library/{path}") } else { path.to_owned() };
        Ok(ImageRef { domain, path, tag, digest })
    }

    /// `domain/path`: what every tag and digest of the image share.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The names the runtime may list this reference under: `repository:tag` (`latest` when neither tag
    /// nor digest is given) and `repository@digest`.
    pub fn runtime_names(&self) -> Vec<String> {
        let repository = self.repository();
        let mut names = Vec::new();
        match (&self.tag, &self.digest) {
            (Some(tag), _) => names.push(format!("{repository}:{tag}")),
            (None, None) => names.push(format!("{repository}:latest")),
            (None, Some(_)) => {}
        }
        if let Some(digest) = &self.digest {
            names.push(format!("{repository}@{digest}"));
        }
        names
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn short_names_are_docker_hub_library_images_at_latest() {
        let nginx = ImageRef::parse("nginx").unwrap();
        assert_eq!(nginx.repository(), "docker.io/library/nginx");
        assert_eq!(nginx.runtime_names(), ["docker.io/library/nginx:latest"]);
        assert_eq!(ImageRef::parse("team/app:v2").unwrap().to_string(), "docker.io/team/app:v2");
    }

    #[test]
    fn registries_with_ports_tags_and_digests_parse() {
        let full = format!("registry.example:5000/team/app:v1.2.3@{DIGEST}");
        let image = ImageRef::parse(&full).unwrap();
        assert_eq!(image.domain, "registry.example:5000");
        assert_eq!(image.path, "team/app");
        assert_eq!(image.tag.as_deref(), Some("v1.2.3"));
        assert_eq!(image.to_string(), full);
        assert_eq!(
            image.runtime_names(),
            ["registry.example:5000/team/app:v1.2.3".to_owned(), format!("registry.example:5000/team/app@{DIGEST}")]
        );
        let port_only = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!((port_only.domain.as_str(), port_only.tag), ("localhost:5000", None));
        let seed = ImageRef::parse("app:v1.1.2-20231010-fixPayModule").unwrap();
        assert_eq!(seed.tag.as_deref(), Some("v1.1.2-20231010-fixPayModule"), "tags may hold capital letters");
        let digest_only = ImageRef::parse(&format!("app@{DIGEST}")).unwrap();
        assert_eq!(digest_only.runtime_names(), [format!("docker.io/library/app@{DIGEST}")]);
    }

    #[test]
    fn malformed_references_are_refused_naming_the_problem() {
        for bad in ["", "App", "app:", "a//b", "app@sha256", "app@sha256:xyz", "has space", "app:-x", "app:a+b"] {
            let error = ImageRef::parse(bad).unwrap_err();
            assert!(error.to_string().contains("is not an image reference"), "{bad}: {error}");
        }
    }
}
