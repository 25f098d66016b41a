//! Cairn's Kubernetes operator: the CairnCluster API (crd), and the controller that runs
//! Cairn clusters from it.

pub mod backup;
pub mod claims;
pub mod context;
pub mod controller;
pub mod crd;
pub mod crds;
pub mod defrag;
pub mod leader;
pub mod members;
pub mod metrics;
pub mod ondemand;
pub mod quorum;
pub mod reconcile;
pub mod resources;
pub mod units;
