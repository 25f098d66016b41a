//! Cairn's Kubernetes operator: the CairnCluster API (crd), and the controller that runs
//! Cairn clusters from it.

pub mod crd;
pub mod reconcile;
