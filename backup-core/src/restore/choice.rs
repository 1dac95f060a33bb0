//! Which archived objects a restore takes, decided from their paths as the index goes by, one entry at a time:
//! what the selection takes (by type, namespace and the cluster-scope rule), and the archived namespace of
//! each namespace the chosen objects go into when the selection leaves namespaces out. Nothing per object
//! is kept: counts per wave, and the names of namespaces and CRDs (a few per cluster, not per object), so
//! a restore of 300,000 objects remembers as much here as one of 3,000. It also notes where in the archive
//! each wave's objects lie, and groups the waves into passes over the archive: waves whose objects follow
//! one another are served by one pass (Cairn's backups write objects in wave order, related objects
//! found late excepted), so a restore reads the archive once or a few times rather than once per wave.
//! Pure: no I/O.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use cairn_kube::resources::{CRDS, NAMESPACES};

use super::{IndexEntry, source::Wanted};
use crate::{
    archive::{
        ItemPath,
        order::{WAVES, wave_of},
    },
    selection::Selection,
};

/// What the restore takes, noted from the index.
#[derive(Debug)]
pub(crate) struct Choice {
    selection: Selection,
    /// Objects the selection takes, per wave.
    per_wave: [u64; WAVES],
    /// Namespaces of chosen namespaced objects.
    needed: BTreeSet<String>,
    /// Namespaces chosen as objects themselves.
    chosen_namespaces: BTreeSet<String>,
    /// Namespace objects in the archive the selection leaves out, and where.
    archived_namespaces: BTreeMap<String, u64>,
    /// CRDs chosen.
    crds: BTreeSet<String>,
    /// Where each wave's objects lie in the archive: the first's and the last's position.
    spans: [Option<(u64, u64)>; WAVES],
    /// Objects noted so far.
    position: u64,
}

impl Choice {
    /// Nothing noted yet; `selection` decides.
    pub(crate) fn new(selection: Selection) -> Self {
        Choice {
            selection,
            per_wave: [0; WAVES],
            needed: BTreeSet::new(),
            chosen_namespaces: BTreeSet::new(),
            archived_namespaces: BTreeMap::new(),
            crds: BTreeSet::new(),
            spans: [None; WAVES],
            position: 0,
        }
    }

    /// Notes one archived object.
    pub(crate) fn note(&mut self, entry: &IndexEntry) {
        let position = self.position;
        self.position += 1;
        let Some(wave) = wave_of(&entry.group_resource) else { return };
        if !self.selection.includes_stored(entry) {
            if entry.group_resource == NAMESPACES {
                self.archived_namespaces.insert(entry.name.clone(), position);
            }
            return;
        }
        self.taken(wave, position);
        if let Some(ns) = &entry.namespace
            && !self.needed.contains(ns)
        {
            self.needed.insert(ns.clone());
        }
        if entry.group_resource == NAMESPACES {
            self.chosen_namespaces.insert(entry.name.clone());
        } else if entry.group_resource == CRDS {
            self.crds.insert(entry.name.clone());
        }
    }

    fn taken(&mut self, wave: usize, position: u64) {
        self.per_wave[wave] += 1;
        let span = self.spans[wave].get_or_insert((position, position));
        span.0 = span.0.min(position);
        span.1 = span.1.max(position);
    }

    /// Everything noted: the restore's choice, fixed.
    pub(crate) fn finish(mut self) -> Chosen {
        // Velero's rule: objects go into a namespace created from its archived object (labels, annotations
        // and spec kept) even when a filter or selector leaves namespaces out; a bare one only when the
        // backup has none, as when the namespace was labelled out of the backup.
        let namespace_wave = wave_of(NAMESPACES).expect("namespaces are restored");
        let brought: BTreeMap<String, u64> = self
            .needed
            .iter()
            .filter_map(|ns| self.archived_namespaces.get(ns).map(|&position| (ns.clone(), position)))
            .collect();
        brought.values().for_each(|&position| self.taken(namespace_wave, position));
        let brought: BTreeSet<String> = brought.into_keys().collect();
        let passes = passes(&self.spans);
        let mut namespaces = self.needed;
        namespaces.extend(self.chosen_namespaces);
        Chosen {
            rule: Arc::new(Rule { selection: self.selection, brought }),
            per_wave: self.per_wave,
            namespaces,
            crds: self.crds,
            passes,
        }
    }
}

/// The restore's choice.
#[derive(Debug)]
pub(crate) struct Chosen {
    rule: Arc<Rule>,
    /// Objects chosen per wave.
    pub(crate) per_wave: [u64; WAVES],
    /// Namespaces the chosen objects are or go into (archived names, before mapping).
    pub(crate) namespaces: BTreeSet<String>,
    /// CRDs chosen.
    pub(crate) crds: BTreeSet<String>,
    /// The passes over the archive, each the waves it serves, in order.
    pub(crate) passes: Vec<Vec<usize>>,
}

impl Chosen {
    /// Objects chosen.
    pub(crate) fn total(&self) -> u64 {
        self.per_wave.iter().sum()
    }

    /// The objects of `waves` chosen, as a pass over the archive asks.
    pub(crate) fn wanted(&self, waves: &[usize]) -> Wanted {
        let (rule, waves) = (self.rule.clone(), waves.to_vec());
        Arc::new(move |item: &ItemPath| {
            wave_of(&item.group_resource).is_some_and(|wave| waves.contains(&wave)) && rule.takes(item)
        })
    }
}

/// Groups the waves that have objects into passes: a pass goes on to the next wave when all of that wave's
/// objects come after all of the current one's, and otherwise ends (the next pass starts over from the top).
fn passes(spans: &[Option<(u64, u64)>; WAVES]) -> Vec<Vec<usize>> {
    let mut passes: Vec<Vec<usize>> = Vec::new();
    let mut last_end: Option<u64> = None;
    for (wave, span) in spans.iter().enumerate() {
        let Some((first, last)) = *span else { continue };
        match (passes.last_mut(), last_end) {
            (Some(pass), Some(end)) if first > end => pass.push(wave),
            _ => passes.push(vec![wave]),
        }
        last_end = Some(last);
    }
    passes
}

/// The rule a pass applies on the reading thread.
#[derive(Debug)]
struct Rule {
    selection: Selection,
    /// Archived namespaces the selection leaves out that chosen objects go into.
    brought: BTreeSet<String>,
}

impl Rule {
    fn takes(&self, item: &ItemPath) -> bool {
        self.selection.includes_stored(item) || (item.group_resource == NAMESPACES && self.brought.contains(&item.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::SelectionSpec;
    use cairn_kube::discovery::{Discovery, ResourceType};

    fn core(resource: &str, kind: &str, namespaced: bool) -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: resource.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: vec![],
        }
    }

    fn choose(spec: SelectionSpec, paths: &[&str]) -> (Chosen, Vec<String>) {
        let types = vec![
            core("namespaces", "Namespace", false),
            core("configmaps", "ConfigMap", true),
            core("secrets", "Secret", true),
        ];
        let selection = Selection::compile(&spec, &Discovery { types, ..Default::default() }).unwrap();
        let entries: Vec<IndexEntry> = paths.iter().filter_map(|p| IndexEntry::parse(p)).collect();
        let mut choice = Choice::new(selection);
        entries.iter().for_each(|e| choice.note(e));
        let chosen = choice.finish();
        let taken = (0..WAVES)
            .flat_map(|wave| {
                let wanted = chosen.wanted(&[wave]);
                entries.iter().filter(move |e| wanted(e)).map(|e| e.path.clone()).collect::<Vec<_>>()
            })
            .collect();
        (chosen, taken)
    }

    #[test]
    fn objects_bring_their_archived_namespace_when_the_restore_leaves_namespaces_out() {
        let paths = [
            "resources/namespaces/cluster/a.json",
            "resources/namespaces/cluster/b.json",
            "resources/configmaps/namespaces/a/c.json",
            "resources/configmaps/namespaces/z/c.json",
            "resources/secrets/namespaces/b/s.json",
        ];
        let spec = SelectionSpec { included_resources: vec!["configmaps".into()], ..Default::default() };
        let (chosen, taken) = choose(spec, &paths);
        // a's object comes along, in the namespaces' wave; z has none in the archive (a bare one is made);
        // b holds nothing chosen.
        assert_eq!(taken, [paths[0], paths[2], paths[3]]);
        assert_eq!(chosen.total(), 3);
        assert_eq!(chosen.namespaces, BTreeSet::from(["a".to_owned(), "z".to_owned()]));
    }

    #[test]
    fn a_namespace_listed_after_its_objects_still_comes_along() {
        let paths = ["resources/configmaps/namespaces/a/c.json", "resources/namespaces/cluster/a.json"];
        let spec = SelectionSpec { included_resources: vec!["configmaps".into()], ..Default::default() };
        let (chosen, taken) = choose(spec, &paths);
        assert_eq!(taken, [paths[1], paths[0]]);
        assert_eq!(chosen.total(), 2);
    }

    #[test]
    fn crds_and_volumes_come_with_some_namespaces_and_nothing_else_outside_them() {
        let paths = [
            "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/widgets.example.com.json",
            "resources/namespaces/cluster/a.json",
            "resources/persistentvolumes/cluster/pv.json",
            "resources/configmaps/namespaces/a/c.json",
            "resources/configmaps/namespaces/b/c.json",
            "resources/clusterroles.rbac.authorization.k8s.io/cluster/r.json",
            "resources/events/namespaces/a/e.json",
        ];
        let spec = SelectionSpec { included_namespaces: vec!["a".into()], ..Default::default() };
        let (chosen, taken) = choose(spec, &paths);
        assert_eq!(taken, [paths[0], paths[1], paths[2], paths[3]]);
        assert_eq!(chosen.crds, BTreeSet::from(["widgets.example.com".to_owned()]));
    }

    #[test]
    fn waves_that_follow_one_another_in_the_archive_share_a_pass() {
        let spec = || SelectionSpec { included_resources: vec!["configmaps".into()], ..Default::default() };
        let ns = "resources/namespaces/cluster/a.json";
        let secret = "resources/secrets/namespaces/a/s.json";
        let configmap = "resources/configmaps/namespaces/a/c.json";
        let crd = "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/w.example.com.json";
        let waves = |names: &[&str]| names.iter().map(|n| wave_of(n).unwrap()).collect::<Vec<_>>();
        let all = waves(&[CRDS, NAMESPACES, "secrets", "configmaps"]);
        let passes = |spec: SelectionSpec, paths: &[&str]| choose(spec, paths).0.passes;
        // In wave order (as Cairn writes): one pass.
        assert_eq!(passes(SelectionSpec::default(), &[crd, ns, secret, configmap]), [all.to_vec()]);
        // A CRD found late (a related object, written last): a pass for it, then one for the rest.
        assert_eq!(passes(SelectionSpec::default(), &[ns, secret, configmap, crd]), [vec![all[0]], all[1..].to_vec()]);
        // Secrets come before ConfigMaps in a restore: after them in the archive, they start a pass of their own.
        assert_eq!(passes(SelectionSpec::default(), &[ns, configmap, secret]), [all[1..3].to_vec(), vec![all[3]]]);
        // ... unless the restore leaves them out.
        assert_eq!(passes(spec(), &[ns, configmap, secret]), [all[1..].iter().step_by(2).copied().collect::<Vec<_>>()]);
        // A namespace the chosen objects need, archived after them, takes a pass of its own.
        assert_eq!(passes(spec(), &[configmap, ns]), [vec![all[1]], vec![all[3]]]);
        assert_eq!(passes(spec(), &[configmap, "resources/namespaces/cluster/b.json"]), [vec![all[3]]]);
    }
}
