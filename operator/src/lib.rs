//! Cairn's Kubernetes operator: the CairnCluster API (crd), and the controller that runs
//! Cairn clusters from it.

pub mod controller;
pub mod crd;
pub mod members;
pub mod reconcile;
pub mod resources;
