//! Which archived objects a restore takes, decided from their paths as the index goes by, one entry at a time:
//! what the selection takes (by type, namespace and the cluster-scope rule), and the archived namespace of
//! each namespace the chosen objects go into when the selection leaves namespaces out. Nothing per object
//! is kept: counts per wave, and the names of namespaces and CRDs (a few per cluster, not per object), so
//! a restore of 300,000 objects remembers as much here as one of 3,000. Pure: no I/O.

use std::{collections::BTreeSet, sync::Arc};

use cairn_kube::resources::{CRDS, NAMESPACES};

use super::{
    IndexEntry,
    order::{WAVES, wave_of},
    source::Wanted,
};
use crate::{archive::ItemPath, selection::Selection};

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
    /// Namespace objects in the archive the selection leaves out.
    archived_namespaces: BTreeSet<String>,
    /// CRDs chosen.
    crds: BTreeSet<String>,
}

impl Choice {
    /// Nothing noted yet; `selection` decides.
    pub(crate) fn new(selection: Selection) -> Self {
        Choice {
            selection,
            per_wave: [0; WAVES],
            needed: BTreeSet::new(),
            chosen_namespaces: BTreeSet::new(),
            archived_namespaces: BTreeSet::new(),
            crds: BTreeSet::new(),
        }
    }

    /// Notes one archived object.
    pub(crate) fn note(&mut self, entry: &IndexEntry) {
        let Some(wave) = wave_of(&entry.group_resource) else { return };
        if !self.selection.includes_stored(entry) {
            if entry.group_resource == NAMESPACES {
                self.archived_namespaces.insert(entry.name.clone());
            }
            return;
        }
        self.per_wave[wave] += 1;
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

    /// Everything noted: the restore's choice, fixed.
    pub(crate) fn finish(mut self) -> Chosen {
        // Velero's rule: objects go into a namespace created from its archived object (labels, annotations
        // and spec kept) even when a filter or selector leaves namespaces out; a bare one only when the
        // backup has none, as when the namespace was labelled out of the backup.
        let brought: BTreeSet<String> = self.needed.intersection(&self.archived_namespaces).cloned().collect();
        let namespace_wave = wave_of(NAMESPACES).expect("namespaces are restored");
        self.per_wave[namespace_wave] += brought.len() as u64;
        let mut namespaces = self.needed;
        namespaces.extend(self.chosen_namespaces);
        Chosen {
            rule: Arc::new(Rule { selection: self.selection, brought }),
            per_wave: self.per_wave,
            namespaces,
            crds: self.crds,
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
}

impl Chosen {
    /// Objects chosen.
    pub(crate) fn total(&self) -> u64 {
        self.per_wave.iter().sum()
    }

    /// The objects of `wave` chosen, as a pass over the archive asks.
    pub(crate) fn wanted(&self, wave: usize) -> Wanted {
        let rule = self.rule.clone();
        Arc::new(move |item: &ItemPath| wave_of(&item.group_resource) == Some(wave) && rule.takes(item))
    }
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
                let wanted = chosen.wanted(wave);
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
}
