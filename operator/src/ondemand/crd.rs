//! `CairnBackup` (cairn.dev/v1alpha1): one full snapshot of a CairnCluster, taken once.
//! Deleting it never deletes what it wrote.

use crate::crd::S3Location;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "CairnBackup",
    namespaced,
    status = "CairnBackupStatus",
    shortname = "cb",
    category = "cairn",
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterName"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Revision", "type": "integer", "jsonPath": ".status.revision"}"#,
    printcolumn = r#"{"name": "Size", "type": "integer", "jsonPath": ".status.size"}"#,
    printcolumn = r#"{"name": "Location", "type": "string", "jsonPath": ".status.location", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CairnBackupSpec {
    /// The CairnCluster, in this namespace, to take a snapshot of.
    pub cluster_name: String,
    /// Where the backup goes, as is (refused if a backup is there already). Default: the
    /// cluster's spec.backup.s3, under on-demand/<this resource's name>/.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CairnBackupStatus {
    /// Running, Completed or Failed (Pending while the cluster is not there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The snapshot's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Bytes of the snapshot, and of the stored (compressed) object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<i64>,
    /// The snapshot object (s3://bucket/key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The backup to restore from (s3://bucket/prefix): `cairn restore --s3-prefix` or a
    /// cluster's spec.bootstrap.restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Why it failed, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
