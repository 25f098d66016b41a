//! The versions Cairn reports.

/// The etcd API level Cairn speaks: clients (and kube-apiserver's version gates) gate
/// features on it. Cairn's own version is reported beside it in /version.
pub const ETCD_API_VERSION: &str = "3.5.0";
pub const CLUSTER_VERSION: &str = "3.5.0";
/// The cluster version as etcd names capabilities ("enabled capabilities for version 3.5").
pub const CLUSTER_VERSION_MINOR: &str = "3.5";
