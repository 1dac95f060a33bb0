//! Pruning a node's images so that nothing still needed goes: [`decide`] (pure) gives every image the
//! runtime holds a verdict with its reason. An image is kept when a container uses it (running or exited),
//! when it is the runtime's sandbox (pause) image or pinned, when any Pod, ReplicaSet (a Deployment's
//! rollback history), ControllerRevision, Deployment, DaemonSet, StatefulSet, Job or CronJob in the cluster
//! names it by tag or digest, or when it matches the keep-list. Removal is by image ID, which takes every
//! tag with it: an image is removed only when none of its names is kept. [`named_images`] reads what the
//! cluster names.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::{ControllerRevision, ReplicaSet},
    core::v1::PodTemplateSpec,
};
use kube::{Api, Client, api::ListParams};
use serde::Serialize;

use crate::{
    ImageError,
    reference::ImageRef,
    workloads::{self, Pods, containers},
};

/// An image as the runtime holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeImage {
    /// Its ID (`sha256:...`).
    pub id: String,
    /// Its tags (`docker.io/library/nginx:1.25`).
    pub tags: Vec<String>,
    /// Its digests (`docker.io/library/nginx@sha256:...`).
    pub digests: Vec<String>,
    /// Its size.
    pub size_bytes: u64,
    /// Whether the runtime recommends keeping it.
    pub pinned: bool,
    /// When it was built (its OCI config's `created`), when the runtime says.
    pub created: Option<jiff::Timestamp>,
}

/// What the prune does with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Removed (or, in a dry run, would be).
    Remove,
    /// Kept; the reason says why.
    Keep,
}

/// One image's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The image ID.
    pub id: String,
    /// Its tags and digests.
    pub names: Vec<String>,
    /// Its size.
    pub size_bytes: u64,
    /// Removed or kept.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
    /// The kind of reason, for totals: `unused`, `inUse`, `sandbox`, `pinned`, `cluster`, `backup`,
    /// `keepList`, `age`, `keepLast` or `startedDuringPrune`.
    pub category: &'static str,
}

/// What protects images beyond the runtime's own view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protections {
    /// The runtime's sandbox (pause) image, as its configuration names it.
    pub sandbox: Option<String>,
    /// Names (as the runtime spells them) the cluster's objects give, each with who names it.
    pub named: BTreeMap<String, String>,
    /// Image references retained backups name (as written in the backup), each with the backup: a restore
    /// would need them.
    pub backups: BTreeMap<String, String>,
    /// Patterns of names never to remove (`*` matches any run of characters).
    pub keep: Vec<String>,
    /// Age and count rules that keep images nothing else protects.
    pub retention: Retention,
}

/// Rules that keep recent images although nothing needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Only images built at least this long before `now` go (`--older-than`); an image whose build time
    /// the runtime does not give is kept.
    pub older_than: Option<std::time::Duration>,
    /// The `keep_last` most recently built images of each repository stay (`--keep-last`), used or not;
    /// images without a build time rank oldest.
    pub keep_last: Option<usize>,
    /// The time ages are measured from.
    pub now: Option<jiff::Timestamp>,
}

/// The reason `retention` keeps `image`, if it does. `newest` holds, for each repository, the IDs of its
/// images newest first.
fn retained(
    image: &RuntimeImage,
    retention: &Retention,
    newest: &BTreeMap<String, Vec<&str>>,
) -> Option<(String, &'static str)> {
    if let Some(k) = retention.keep_last {
        let kept = image.tags.iter().find_map(|tag| {
            let repository = ImageRef::parse(tag).ok()?.repository();
            let rank = newest.get(&repository)?.iter().position(|id| *id == image.id)?;
            (rank < k).then_some(repository)
        });
        if let Some(repository) = kept {
            return Some((
                format!("one of the {k} most recently built images of {repository} (--keep-last)"),
                "keepLast",
            ));
        }
    }
    let (Some(older_than), Some(now)) = (retention.older_than, retention.now) else { return None };
    let limit = cairn_kube::duration::format_duration(older_than);
    let Some(created) = image.created else {
        let reason = format!("its build time is unknown, so it cannot be shown older than {limit} (--older-than)");
        return Some((reason, "age"));
    };
    let age = now.duration_since(created);
    (age < jiff::SignedDuration::try_from(older_than).unwrap_or(jiff::SignedDuration::MAX)).then(|| {
        let age = std::time::Duration::try_from(age).map_or_else(
            |_| "0s".to_owned(),
            |a| cairn_kube::duration::format_duration(std::time::Duration::from_secs(a.as_secs())),
        );
        (format!("built {age} ago, within --older-than {limit}"), "age")
    })
}

/// For each repository the node holds, its images' IDs, most recently built first (unknown build times last).
fn newest_first(images: &[RuntimeImage]) -> BTreeMap<String, Vec<&str>> {
    let mut by_repository: BTreeMap<String, Vec<&RuntimeImage>> = BTreeMap::new();
    for image in images {
        let mut repositories: Vec<String> =
            image.tags.iter().filter_map(|t| ImageRef::parse(t).ok()).map(|r| r.repository()).collect();
        repositories.dedup();
        for repository in repositories {
            by_repository.entry(repository).or_default().push(image);
        }
    }
    by_repository
        .into_iter()
        .map(|(repository, mut images)| {
            images.sort_by_key(|i| std::cmp::Reverse(i.created));
            (repository, images.into_iter().map(|i| i.id.as_str()).collect())
        })
        .collect()
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The names a runtime may use for `reference` (normalized), or the reference itself when it does not parse.
fn normalized(reference: &str) -> Vec<String> {
    ImageRef::parse(reference).map(|r| r.runtime_names()).unwrap_or_else(|_| vec![reference.to_owned()])
}

/// Every image's verdict: kept with the first reason that applies, else removed.
pub fn decide(
    images: &[RuntimeImage],
    in_use: &BTreeMap<String, Vec<String>>,
    protections: &Protections,
) -> Vec<Decision> {
    let sandbox: Vec<String> = protections.sandbox.as_deref().map(normalized).unwrap_or_default();
    let newest = newest_first(images);
    let mut backups: BTreeMap<String, &str> = BTreeMap::new();
    for (reference, who) in &protections.backups {
        for name in normalized(reference) {
            backups.entry(name).or_insert(who);
        }
    }
    images
        .iter()
        .map(|image| {
            let names: Vec<String> = image.tags.iter().chain(&image.digests).cloned().collect();
            let used_by = std::iter::once(&image.id).chain(&names).find_map(|key| in_use.get(key));
            let kept = if let Some(containers) = used_by {
                Some((format!("in use by container(s) {}", containers.join(", ")), "inUse"))
            } else if names.iter().any(|n| sandbox.contains(n)) || sandbox.contains(&image.id) {
                Some(("the runtime's sandbox (pause) image".to_owned(), "sandbox"))
            } else if image.pinned {
                Some(("pinned by the runtime".to_owned(), "pinned"))
            } else if let Some((name, who)) = names.iter().find_map(|n| protections.named.get(n).map(|w| (n, w))) {
                Some((format!("{name} is named by {who}"), "cluster"))
            } else if let Some((name, who)) = names.iter().find_map(|n| backups.get(n).map(|w| (n, w))) {
                Some((format!("{name} is named by {who}"), "backup"))
            } else if let Some((name, pattern)) =
                names.iter().find_map(|n| protections.keep.iter().find(|p| matches_pattern(p, n)).map(|p| (n, p)))
            {
                Some((format!("{name} matches the keep-list pattern {pattern:?}"), "keepList"))
            } else {
                retained(image, &protections.retention, &newest)
            };
            let (verdict, (reason, category)) = match kept {
                Some(kept) => (Verdict::Keep, kept),
                None => {
                    (Verdict::Remove, ("no container uses it and nothing in the cluster names it".to_owned(), "unused"))
                }
            };
            Decision { id: image.id.clone(), names, size_bytes: image.size_bytes, verdict, reason, category }
        })
        .collect()
}

fn name_template(named: &mut BTreeMap<String, String>, template: Option<&PodTemplateSpec>, who: &str) {
    if let Some(spec) = template.and_then(|t| t.spec.as_ref()) {
        for (_, image, _) in containers(spec) {
            for name in normalized(image) {
                named.entry(name).or_insert_with(|| who.to_owned());
            }
        }
    }
}

/// Every image name the cluster's objects give (pods, workload templates, ReplicaSets and ControllerRevisions
/// kept for rollbacks), each with the first object that names it.
pub async fn named_images(client: &Client) -> Result<BTreeMap<String, String>, ImageError> {
    let mut named = BTreeMap::new();
    // Every pod too: a managed pod may still run an older image than its controller's template names.
    for workload in workloads::read(client, None, Pods::All).await? {
        let who = format!("{} {}/{}", workload.kind, workload.namespace, workload.name);
        let template = PodTemplateSpec { spec: Some(workload.spec), ..PodTemplateSpec::default() };
        name_template(&mut named, Some(&template), &who);
    }
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    for rs in sets.list(&ListParams::default()).await.map_err(|e| ImageError::kube("listing ReplicaSets", e))?.items {
        let who = format!(
            "ReplicaSet {}/{} (rollback history)",
            rs.metadata.namespace.unwrap_or_default(),
            rs.metadata.name.unwrap_or_default()
        );
        name_template(&mut named, rs.spec.template.as_ref(), &who);
    }
    let revisions: Api<ControllerRevision> = Api::all(client.clone());
    for cr in revisions
        .list(&ListParams::default())
        .await
        .map_err(|e| ImageError::kube("listing ControllerRevisions", e))?
        .items
    {
        let who = format!(
            "ControllerRevision {}/{} (rollback history)",
            cr.metadata.namespace.unwrap_or_default(),
            cr.metadata.name.unwrap_or_default()
        );
        let template: Option<PodTemplateSpec> = serde_json::from_value(cr.data.0["spec"]["template"].clone()).ok();
        name_template(&mut named, template.as_ref(), &who);
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], pinned: bool) -> RuntimeImage {
        RuntimeImage {
            id: id.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            digests: Vec::new(),
            size_bytes: 1000,
            pinned,
            created: None,
        }
    }

    #[test]
    fn every_protection_keeps_its_image_with_its_reason_and_the_rest_goes() {
        let images = [
            image("sha256:used", &["cairn.test/app:v2"], false),
            image("sha256:pause", &["cairn.test/pause:1"], false),
            image("sha256:pinned", &["cairn.test/pinned:1"], true),
            image("sha256:history", &["cairn.test/app:v1"], false),
            image("sha256:keep", &["cairn.test/tools:v9"], false),
            image("sha256:shared", &["cairn.test/lib:v1", "cairn.test/lib:old"], false),
            image("sha256:old", &["cairn.test/old:v1"], false),
            image("sha256:unused", &["cairn.test/unused:v1"], false),
        ];
        let in_use = BTreeMap::from([("sha256:used".to_owned(), vec!["app".to_owned()])]);
        let protections = Protections {
            sandbox: Some("cairn.test/pause:1".into()),
            named: BTreeMap::from([
                ("cairn.test/app:v1".to_owned(), "ReplicaSet shop/web-1 (rollback history)".to_owned()),
                ("cairn.test/lib:v1".to_owned(), "Job shop/migrate".to_owned()),
            ]),
            backups: BTreeMap::from([("cairn.test/old:v1".to_owned(), "backup nightly".to_owned())]),
            keep: vec!["cairn.test/tools:*".into()],
            retention: Retention::default(),
        };
        let decided = decide(&images, &in_use, &protections);
        let reasons: Vec<(&str, Verdict, &str)> =
            decided.iter().map(|d| (d.id.as_str(), d.verdict, d.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                ("sha256:used", Verdict::Keep, "in use by container(s) app"),
                ("sha256:pause", Verdict::Keep, "the runtime's sandbox (pause) image"),
                ("sha256:pinned", Verdict::Keep, "pinned by the runtime"),
                (
                    "sha256:history",
                    Verdict::Keep,
                    "cairn.test/app:v1 is named by ReplicaSet shop/web-1 (rollback history)"
                ),
                (
                    "sha256:keep",
                    Verdict::Keep,
                    "cairn.test/tools:v9 matches the keep-list pattern \"cairn.test/tools:*\""
                ),
                ("sha256:shared", Verdict::Keep, "cairn.test/lib:v1 is named by Job shop/migrate"),
                ("sha256:old", Verdict::Keep, "cairn.test/old:v1 is named by backup nightly"),
                ("sha256:unused", Verdict::Remove, "no container uses it and nothing in the cluster names it"),
            ]
        );
    }

    #[test]
    fn age_and_count_rules_keep_recent_images_and_unknown_ages() {
        let now: jiff::Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
        let built = |id: &str, tag: &str, days_ago: Option<i64>| RuntimeImage {
            created: days_ago.map(|d| now - jiff::SignedDuration::from_hours(24 * d)),
            ..image(id, &[tag], false)
        };
        let images = [
            built("sha256:a1", "cairn.test/a:1", Some(90)),
            built("sha256:a2", "cairn.test/a:2", Some(60)),
            built("sha256:a3", "cairn.test/a:3", Some(5)),
            built("sha256:b1", "cairn.test/b:1", None),
        ];
        let decide_with = |retention: Retention| {
            let protections = Protections { retention, ..Protections::default() };
            decide(&images, &BTreeMap::new(), &protections)
                .into_iter()
                .map(|d| (d.verdict, d.reason))
                .collect::<Vec<_>>()
        };
        let month = Some(std::time::Duration::from_secs(30 * 86400));
        let by_age = decide_with(Retention { older_than: month, now: Some(now), keep_last: None });
        assert_eq!(by_age[0].0, Verdict::Remove);
        assert_eq!(by_age[1].0, Verdict::Remove);
        assert_eq!(by_age[2], (Verdict::Keep, "built 120h0m0s ago, within --older-than 720h0m0s".to_owned()));
        assert!(by_age[3].1.starts_with("its build time is unknown"), "{:?}", by_age[3]);

        let by_count = decide_with(Retention { keep_last: Some(2), ..Retention::default() });
        let verdicts: Vec<Verdict> = by_count.iter().map(|d| d.0).collect();
        assert_eq!(verdicts, [Verdict::Remove, Verdict::Keep, Verdict::Keep, Verdict::Keep]);
        assert_eq!(by_count[1].1, "one of the 2 most recently built images of cairn.test/a (--keep-last)");
    }

    #[test]
    fn keep_patterns_match_with_stars() {
        assert!(matches_pattern("a*", "abc") && matches_pattern("*c", "abc") && matches_pattern("a*c", "abc"));
        assert!(matches_pattern("a*b*c", "axxbyyc") && matches_pattern("abc", "abc"));
        assert!(!matches_pattern("a*d", "abc") && !matches_pattern("ab*bc", "abc") && !matches_pattern("x", "abc"));
    }
}
