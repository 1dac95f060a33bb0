//! Image lint: what makes a workload's images hard to roll back or to reproduce. `:latest` and untagged
//! images (the image changes under the same name), images without a digest, `imagePullPolicy: Always` on a
//! pinned digest (a registry round trip for nothing), and tags that carry no version (the seed's advice: a
//! semantic version with date and purpose, `v1.1.2-20231010-fixPayModule`). [`lint`] is pure.

use serde::Serialize;

use crate::{
    reference::ImageRef,
    workloads::{Workload, containers},
};

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The reference does not parse.
    Invalid,
    /// The tag is `latest`.
    LatestTag,
    /// Neither tag nor digest: the runtime takes `latest`.
    Untagged,
    /// A tag that carries no version (no digit: `stable`, `prod`).
    UnversionedTag,
    /// No digest: the tag may be moved to other content.
    NoDigest,
    /// A pinned digest pulled `Always`.
    AlwaysPullPinned,
}

impl Rule {
    /// Every rule, in the order findings are listed.
    pub const ALL: [Rule; 6] =
        [Rule::Invalid, Rule::LatestTag, Rule::Untagged, Rule::UnversionedTag, Rule::NoDigest, Rule::AlwaysPullPinned];

    /// The rule's name, as `--ignore` and JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Invalid => "invalid",
            Rule::LatestTag => "latest-tag",
            Rule::Untagged => "untagged",
            Rule::UnversionedTag => "unversioned-tag",
            Rule::NoDigest => "no-digest",
            Rule::AlwaysPullPinned => "always-pull-pinned",
        }
    }

    /// The rule named `name`.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// One image a rule flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The workload's kind.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The container.
    pub container: String,
    /// The image as written.
    pub image: String,
    /// The rule.
    pub rule: Rule,
    /// What is wrong and the fix.
    pub message: String,
}

/// The findings of the rules not in `ignored` on `workloads`' containers.
pub fn lint(workloads: &[Workload], ignored: &[Rule]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for workload in workloads {
        for (container, image, pull_policy) in containers(&workload.spec) {
            for (rule, message) in check(image, pull_policy) {
                if ignored.contains(&rule) {
                    continue;
                }
                findings.push(Finding {
                    kind: workload.kind,
                    namespace: workload.namespace.clone(),
                    name: workload.name.clone(),
                    container: container.to_owned(),
                    image: image.to_owned(),
                    rule,
                    message,
                });
            }
        }
    }
    findings
}

/// What the rules say of one image.
fn check(image: &str, pull_policy: Option<&str>) -> Vec<(Rule, String)> {
    let parsed = match ImageRef::parse(image) {
        Ok(parsed) => parsed,
        Err(error) => return vec![(Rule::Invalid, error.to_string())],
    };
    let mut said = Vec::new();
    match (parsed.tag.as_deref(), &parsed.digest) {
        (Some("latest"), _) => said.push((
            Rule::LatestTag,
            "`latest` moves with every push: a rollback cannot name what ran before; tag a version".to_owned(),
        )),
        (None, None) => said.push((
            Rule::Untagged,
            "no tag: the runtime takes `latest`, which moves with every push; tag a version".to_owned(),
        )),
        (Some(tag), _) if !tag.chars().any(|c| c.is_ascii_digit()) => said.push((
            Rule::UnversionedTag,
            format!("the tag {tag:?} carries no version; use one such as v1.1.2-20231010-fixPayModule"),
        )),
        _ => {}
    }
    if parsed.digest.is_none() {
        said.push((
            Rule::NoDigest,
            "no digest: the registry may serve other content under this tag; pin it with @sha256:...".to_owned(),
        ));
    } else if pull_policy == Some("Always") {
        said.push((
            Rule::AlwaysPullPinned,
            "a pinned digest never changes: imagePullPolicy Always only asks the registry again; use IfNotPresent"
                .to_owned(),
        ));
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn workload(images: &[(&str, Option<&str>)]) -> Workload {
        let containers = images
            .iter()
            .enumerate()
            .map(|(i, (image, policy))| Container {
                name: format!("c{i}"),
                image: Some((*image).to_owned()),
                image_pull_policy: policy.map(str::to_owned),
                ..Container::default()
            })
            .collect();
        Workload {
            kind: "Deployment",
            namespace: "shop".into(),
            name: "web".into(),
            spec: PodSpec { containers, ..PodSpec::default() },
        }
    }

    fn rules(images: &[(&str, Option<&str>)], ignored: &[Rule]) -> Vec<(String, Rule)> {
        lint(&[workload(images)], ignored).into_iter().map(|f| (f.container, f.rule)).collect()
    }

    #[test]
    fn each_rule_flags_what_it_names() {
        let pinned = format!("registry.example/app:v1.2.3@{DIGEST}");
        let found = rules(
            &[
                ("nginx:latest", None),
                ("nginx", None),
                ("app:stable", None),
                ("app:v1.1.2-20231010-fixPayModule", None),
                (&pinned, Some("Always")),
                (&pinned, Some("IfNotPresent")),
                ("Bad Image", None),
            ],
            &[],
        );
        let expected = [
            ("c0", Rule::LatestTag),
            ("c0", Rule::NoDigest),
            ("c1", Rule::Untagged),
            ("c1", Rule::NoDigest),
            ("c2", Rule::UnversionedTag),
            ("c2", Rule::NoDigest),
            ("c3", Rule::NoDigest),
            ("c4", Rule::AlwaysPullPinned),
            ("c6", Rule::Invalid),
        ];
        assert_eq!(found, expected.map(|(c, r)| (c.to_owned(), r)));
    }

    #[test]
    fn ignored_rules_are_not_reported_and_names_round_trip() {
        assert_eq!(rules(&[("app:v1.2.3", None)], &[Rule::NoDigest]), []);
        for rule in Rule::ALL {
            assert_eq!(Rule::from_name(rule.name()), Some(rule));
        }
    }
}
