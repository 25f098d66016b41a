//! `CairnRestore` (cairn.dev/v1alpha1): a named cluster restored in place from a backup, once.
//! Deleting it never deletes a backup, nor stops a restore that has started.

use crate::crd::{RestoreStage, S3Location};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "CairnRestore",
    namespaced,
    status = "CairnRestoreStatus",
    shortname = "crs",
    category = "cairn",
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterName"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Stage", "type": "string", "jsonPath": ".status.stage"}"#,
    printcolumn = r#"{"name": "Revision", "type": "integer", "jsonPath": ".status.revision"}"#,
    printcolumn = r#"{"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!(has(self.revision) && has(self.time))").message("give revision or time, not both"))]
#[x_kube(validation = Rule::new("!(has(self.backupName) && has(self.s3))").message("give backupName or s3, not both"))]
#[serde(rename_all = "camelCase")]
pub struct CairnRestoreSpec {
    /// The CairnCluster, in this namespace, to restore in place: every member is stopped,
    /// restored from the backup, and started again.
    pub cluster_name: String,
    /// Restore what this CairnBackup took (at its revision, unless one is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    /// ... or the backup at this location. Default: the cluster's spec.backup.s3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
    /// Restore up to this revision (default: the newest backed up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub revision: Option<i64>,
    /// ... or up to this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CairnRestoreStatus {
    /// Pending (waiting for the cluster, or for its recovery or restore in progress),
    /// Restoring, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// While Restoring: stopping (every member's pod deleted) or starting (each restoring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<RestoreStage>,
    /// The revision restored (for a time target, known once complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The revision the restored cluster goes on from (past every revision seen before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_revision: Option<i64>,
    /// s3://bucket/prefix restored from.
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
