//! The Services, the PodDisruptionBudget and the ConfigMap of a cluster.

use super::{labels, name, owned_meta, peer_service, CLIENT_PORT, PEER_PORT};
use crate::crd::CairnCluster;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort { name: Some(name.into()), port, target_port: Some(IntOrString::Int(port)), ..Default::default() }
}

/// Headless, and publishing members before they are ready: a new member must find its peers
/// (and they it) to become ready at all.
pub fn peer(c: &CairnCluster) -> Service {
    Service {
        metadata: owned_meta(c, &peer_service(c), BTreeMap::new()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels(c)),
            ports: Some(vec![port("client", CLIENT_PORT), port("peer", PEER_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What clients use: the members that are ready.
pub fn client(c: &CairnCluster) -> Service {
    Service {
        metadata: owned_meta(c, &name(c), BTreeMap::new()),
        spec: Some(ServiceSpec {
            selector: Some(labels(c)),
            ports: Some(vec![port("client", CLIENT_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Voluntary disruptions (drains) may never take a quorum away.
pub fn pdb(c: &CairnCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owned_meta(c, &name(c), BTreeMap::new()),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(crate::quorum::quorum(c.spec.replicas.max(0) as usize) as i32)),
            selector: Some(LabelSelector { match_labels: Some(labels(c)), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a client needs to reach the cluster, for people and tools that read it.
pub fn config_map(c: &CairnCluster) -> ConfigMap {
    let client = format!("http://{}.{}.svc.{}:{CLIENT_PORT}", name(c), super::namespace(c), c.spec.cluster_domain);
    ConfigMap {
        metadata: owned_meta(c, &format!("{}-config", name(c)), BTreeMap::new()),
        data: Some(BTreeMap::from([
            ("endpoints".to_string(), client),
            ("peer-service".to_string(), peer_service(c)),
            ("initial-cluster-token".to_string(), super::member::cluster_token(c)),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::sample;

    #[test]
    fn services_select_the_members_and_the_budget_keeps_a_quorum() {
        let c = sample("demo", "replicas: 5");
        let p = peer(&c);
        assert_eq!(p.metadata.name.as_deref(), Some("demo-peer"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.selector.unwrap()["app.kubernetes.io/instance"], "demo");
        assert_eq!(client(&c).spec.unwrap().ports.unwrap()[0].port, 2379);
        assert_eq!(pdb(&c).spec.unwrap().min_available, Some(IntOrString::Int(3)));
        assert_eq!(config_map(&c).data.unwrap()["endpoints"], "http://demo.ns.svc.cluster.local:2379");
        let owner = &p.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("CairnCluster", "uid-1", Some(true)));
    }
}
