//! The objects a CairnCluster owns, built as pure functions of the cluster (DESIGN §4): the
//! headless Service that gives members stable DNS names, the client Service, the PDB that
//! keeps a quorum, and per member a claim and a pod.

pub mod member;
pub mod pod_hash;
pub mod security;
pub mod services;
pub mod settings;

use crate::crd::CairnCluster;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use std::collections::BTreeMap;

pub const CLIENT_PORT: i32 = 2379;
pub const PEER_PORT: i32 = 2380;
pub const MEMBER_LABEL: &str = "cairn.dev/member";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

pub fn name(c: &CairnCluster) -> String {
    c.metadata.name.clone().unwrap_or_default()
}

pub fn namespace(c: &CairnCluster) -> String {
    c.metadata.namespace.clone().unwrap_or_else(|| "default".into())
}

/// The labels every object of the cluster carries; its members' pods are selected by them.
pub fn labels(c: &CairnCluster) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_string(), "cairn".to_string()), (INSTANCE_LABEL.to_string(), name(c))])
}

pub fn selector(c: &CairnCluster) -> String {
    format!("{NAME_LABEL}=cairn,{INSTANCE_LABEL}={}", name(c))
}

/// The headless Service members are named under: `<member>.<cluster>-peer.<ns>.svc...`.
pub fn peer_service(c: &CairnCluster) -> String {
    format!("{}-peer", name(c))
}

pub fn member_host(c: &CairnCluster, member: &str) -> String {
    format!("{member}.{}.{}.svc.{}", peer_service(c), namespace(c), c.spec.cluster_domain)
}

pub fn peer_url(c: &CairnCluster, member: &str) -> String {
    format!("http://{}:{PEER_PORT}", member_host(c, member))
}

/// Metadata of an owned object: the cluster's labels (plus `extra`), its namespace, and an
/// owner reference, so deleting the cluster deletes it.
pub fn owned_meta(c: &CairnCluster, name: &str, extra: BTreeMap<String, String>) -> ObjectMeta {
    let mut labels = labels(c);
    labels.extend(extra);
    let owner = OwnerReference {
        api_version: CairnCluster::api_version(&()).into_owned(),
        kind: CairnCluster::kind(&()).into_owned(),
        name: self::name(c),
        uid: c.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace(c)),
        labels: Some(labels),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) fn sample(name: &str, yaml_spec: &str) -> CairnCluster {
    let spec: crate::crd::CairnClusterSpec = serde_yaml::from_str(yaml_spec).expect("a spec");
    let mut c = CairnCluster::new(name, spec);
    c.metadata.namespace = Some("ns".into());
    c.metadata.uid = Some("uid-1".into());
    c
}
