//! Which resources are served right now: the built-in ones, plus those of every established
//! CustomResourceDefinition (re-read after each CRD write).

use super::resources::{builtins, from_crd, Resource};
use serde_json::Value;
use std::sync::RwLock;

pub struct Registry {
    resources: RwLock<Vec<Resource>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { resources: RwLock::new(builtins()) }
    }
}

impl Registry {
    pub fn all(&self) -> Vec<Resource> {
        self.resources.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.all().into_iter().find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource of a kind in a group, whatever its served version (for owner references).
    pub fn by_id(&self, id: &str) -> Option<Resource> {
        self.all().into_iter().find(|r| r.id() == id)
    }

    pub fn set_crds(&self, crds: &[Value]) {
        let mut all = builtins();
        for crd in crds {
            all.extend(from_crd(crd));
        }
        *self.resources.write().unwrap_or_else(|e| e.into_inner()) = all;
    }

    /// Groups with their versions, the core group first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all() {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version.clone()),
                Some(_) => {}
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }
}
