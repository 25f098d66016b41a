//! `CairnCluster` (cairn.dev/v1alpha1): the API users write (DESIGN §4). The schema carries
//! its own rules (odd replicas through a CEL rule, so the API server refuses 4 before the
//! operator ever sees it) and defaults; `crdgen` writes it to crds/.

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements, SecurityContext, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const GROUP: &str = "cairn.dev";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "CairnCluster",
    namespaced,
    status = "CairnClusterStatus",
    shortname = "cc",
    category = "cairn",
    printcolumn = r#"{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}"#,
    printcolumn = r#"{"name": "Ready", "type": "integer", "jsonPath": ".status.readyMembers"}"#,
    printcolumn = r#"{"name": "Updated", "type": "integer", "jsonPath": ".status.updatedMembers"}"#,
    printcolumn = r#"{"name": "Leader", "type": "string", "jsonPath": ".status.leader"}"#,
    printcolumn = r#"{"name": "Revision", "type": "integer", "jsonPath": ".status.revision"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CairnClusterSpec {
    /// Members: 1, 3, 5, 7 or 9 (an even count adds no fault tolerance, only a larger quorum).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 9))]
    #[x_kube(validation = Rule::new("self % 2 == 1").message("replicas must be odd: 1, 3, 5, 7 or 9"))]
    pub replicas: i32,
    /// The member image (its `cairn` binary is what runs).
    #[serde(default = "default_image")]
    pub image: String,
    #[serde(default)]
    pub storage: StorageSpec,
    /// Requests and limits of each member's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub placement: Placement,
    /// Extra metadata and scheduling for member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defrag: Option<DefragSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,
    #[serde(default)]
    pub recovery: RecoverySpec,
    /// The Kubernetes cluster's DNS domain, in the members' advertised names.
    #[serde(default = "default_cluster_domain")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub cluster_domain: String,
    /// The members' settings (etcd's flags). A change rolls through the members one at a time.
    #[serde(default)]
    pub etcd: EtcdSpec,
    /// How long a member may stay unhealthy, quorum holding, before it is removed and added
    /// back as a new learner (a duration: 2m).
    #[serde(default = "default_replace_unhealthy_after")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub replace_unhealthy_after: String,
    /// How long one member's update may take (its pod made again, the member healthy and
    /// caught up) before the roll stops with UpdateStalled (a duration: 5m).
    #[serde(default = "default_progress_deadline")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub progress_deadline: String,
}

fn default_replace_unhealthy_after() -> String {
    "2m".into()
}

fn default_cluster_domain() -> String {
    "cluster.local".into()
}

fn default_progress_deadline() -> String {
    "5m".into()
}

/// etcd's settings of a member, as its flags name them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("(has(self.electionTimeout) ? self.electionTimeout : 1000) >= 5 * (has(self.heartbeatInterval) ? self.heartbeatInterval : 100)")
        .message("electionTimeout must be at least 5 times heartbeatInterval (etcd's rule)")
)]
#[x_kube(
    validation = Rule::new("self.autoCompactionMode == 'revision' ? self.autoCompactionRetention.matches('^[0-9]+$') : self.autoCompactionRetention.matches('^([0-9]+|([0-9]+([.][0-9]+)?(ms|s|m|h))+)$')")
        .message("autoCompactionRetention: a duration (1h, 30m) for periodic, a count of revisions for revision")
)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSpec {
    /// periodic: keep a span of time of history; revision: keep a number of revisions.
    #[serde(default)]
    pub auto_compaction_mode: CompactionMode,
    /// periodic: a duration (1h); revision: a count (10000). "0" turns auto-compaction off
    /// (then only kube-apiserver's own compactions, or none, keep the history in bounds).
    #[serde(default = "default_compaction_retention")]
    pub auto_compaction_retention: String,
    /// The database's size limit (a quantity: 8Gi), past which writes fail with NOSPACE
    /// (default: etcd's, 2 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub quota_backend_bytes: Option<String>,
    /// Applied entries between raft snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub snapshot_count: Option<i64>,
    /// Milliseconds between leader heartbeats (etcd: 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub heartbeat_interval: Option<i64>,
    /// Milliseconds without a leader before an election (etcd: 1000; at least 5 heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub election_timeout: Option<i64>,
    /// The largest request a member accepts, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_request_bytes: Option<i64>,
    /// The most operations in one transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_txn_ops: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// Any other of etcd's flags (--name=value). Those the operator sets itself (names, URLs,
    /// the data dir, the initial cluster) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(f, f.matches('^--[a-z0-9-]+(=.*)?$'))").message("each extra flag is --name or --name=value"))]
    #[x_kube(validation = Rule::new("self.all(f, !['--name', '--data-dir', '--wal-dir', '--listen-', '--advertise-', '--initial-', '--force-new-cluster'].exists(p, f.startsWith(p)))").message("the operator sets names, URLs, the data dir and the initial cluster itself"))]
    pub extra_flags: Vec<String>,
}

impl Default for EtcdSpec {
    fn default() -> Self {
        EtcdSpec {
            auto_compaction_mode: CompactionMode::default(),
            auto_compaction_retention: default_compaction_retention(),
            quota_backend_bytes: None,
            snapshot_count: None,
            heartbeat_interval: None,
            election_timeout: None,
            max_request_bytes: None,
            max_txn_ops: None,
            log_level: None,
            extra_flags: Vec::new(),
        }
    }
}

fn default_compaction_retention() -> String {
    "1h".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CompactionMode {
    #[default]
    Periodic,
    Revision,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// What the operator does when a majority of members is lost for good.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySpec {
    #[serde(default)]
    pub mode: RecoveryMode,
    /// How long a majority must stay unreachable, with no leader, before quorum is declared
    /// lost for good (a duration: 5m). Members whose claims are gone count at once.
    #[serde(default = "default_unreachable_for")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub unreachable_for: String,
}

impl Default for RecoverySpec {
    fn default() -> Self {
        RecoverySpec { mode: RecoveryMode::default(), unreachable_for: default_unreachable_for() }
    }
}

fn default_unreachable_for() -> String {
    "5m".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RecoveryMode {
    /// The member with the highest applied index restarts as a one-member cluster with its
    /// data (--force-new-cluster); the others are removed and added back as learners.
    #[default]
    Automatic,
    /// Only reported (the Degraded condition and an Event say what Automatic would do).
    Manual,
}

fn default_replicas() -> i32 {
    3
}

fn default_image() -> String {
    format!("cairn:{}", env!("CARGO_PKG_VERSION"))
}

fn default_size() -> String {
    "10Gi".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Each member's volume, as a Kubernetes quantity.
    #[serde(default = "default_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the members' claims (their data) when the CairnCluster is deleted.
    #[serde(default)]
    pub retention_policy: ClaimRetention,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec { size: default_size(), storage_class_name: None, retention_policy: ClaimRetention::default() }
    }
}

/// As a StatefulSet's persistentVolumeClaimRetentionPolicy.whenDeleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ClaimRetention {
    /// The claims stay, no longer owned (a CairnCluster of the same name made again starts
    /// its members from them): deleting the resource never deletes the data by itself.
    #[default]
    Retain,
    /// The claims go with the cluster.
    Delete,
}

/// Where members run: `external` on their own nodes (kubeadm's external etcd topology: pod
/// anti-affinity across nodes), `stacked` on the control-plane nodes (node selector and
/// toleration of their taint).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Placement {
    #[default]
    External,
    Stacked,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// The member pods' ServiceAccount (for example one EKS's IRSA maps to an IAM role that
    /// may read the backups a restore starts from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Extra environment of the member containers, the restore container included (for
    /// example AWS_REGION, or proxy settings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Scheduling rules of the member pods; the placement's anti-affinity is added to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Replaces the pod's default security context (non-root user 65532, its group owning
    /// the volume, RuntimeDefault seccomp: what the restricted Pod Security level asks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Replaces the containers' default security context (no privilege escalation, every
    /// capability dropped, a read-only root file system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,
}

/// An S3 location (or an S3-compatible store's).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    pub bucket: String,
    /// Objects live under s3://bucket/prefix/.
    #[serde(default)]
    pub prefix: String,
    /// For S3-compatible stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub force_path_style: bool,
    /// A Secret with the keys accessKeyId and secretAccessKey. Without one, the AWS SDK's
    /// default credential chain: the operator's own (its environment, a web identity token
    /// as EKS's IRSA injects, container or instance metadata) for backups, the member pods'
    /// (see spec.pod.serviceAccountName and spec.pod.env) for restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    pub s3: S3Location,
    /// Full snapshots, as a standard 5-field cron schedule (as CronJob).
    #[schemars(regex(pattern = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"))]
    pub full_schedule: String,
    /// How often watched changes are flushed as a delta (a duration: 10s, 1m).
    #[serde(default = "default_delta_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub delta_interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

fn default_delta_interval() -> String {
    "10s".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Full snapshots (with their deltas) kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_snapshots: Option<u32>,
    /// Older chains go (a duration: 168h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub max_age: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefragSpec {
    /// A standard 5-field cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"))]
    pub schedule: Option<String>,
    /// Defragment when 1 - dbSizeInUse/dbSize passes this (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub fragmentation_threshold: Option<f64>,
    /// ... and the database is at least this large (a quantity: 100Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"))]
    pub min_db_size: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    pub s3: S3Location,
    /// Restore up to this revision (default: the latest backed up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// ... or up to this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CairnClusterStatus {
    /// Creating, Running, Reconciling, Updating, Degraded, Recovering or Restoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Available, Progressing, Degraded, BackupHealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    /// Voters that are healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_members: Option<i32>,
    /// The leader's member name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<LastBackup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_defrag: Option<LastDefrag>,
    /// The membership change in progress, recorded before it is made so that a restarted
    /// operator finishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<RecordedChange>,
    /// A recovery from quorum loss in progress, recorded before its first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecordedRecovery>,
    /// The last recovery from quorum loss, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recovery: Option<RecordedRecovery>,
    /// A restore of every member from a backup in progress (a rebuild, or a CairnRestore),
    /// recorded before its first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RecordedRestore>,
    /// The last restore from a backup, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore: Option<RecordedRestore>,
    /// Members whose pods are as the spec asks now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_members: Option<i32>,
}

/// Every member restored from a backup: all of them stopped first, then each started from the
/// same backup objects into its claim (the old data set aside beside it), as founders of the
/// cluster again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRestore {
    /// Names the restore in the members' data dirs (an init container run again after the
    /// restore completed leaves the data alone).
    pub id: String,
    /// The CairnRestore that asked for it; none for a rebuild after quorum loss with no
    /// member's data left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The backup, and the revision (or time) restored.
    #[serde(flatten)]
    pub source: RestoreSpec,
    /// Added to the restored revision (etcd's --bump-revision, with --mark-compacted): the
    /// cluster's revisions go on past every one it or its backup had, so no client ever sees
    /// a revision again with other data behind it.
    pub bump_revision: i64,
    /// The members it makes (founders of the restored cluster).
    pub members: Vec<String>,
    pub stage: RestoreStage,
    /// The newest revision the operator or the backup had seen before: writes past the
    /// restored revision up to it (and any after it) are not in the restored cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_revision: Option<i64>,
    /// RFC 3339.
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RestoreStage {
    /// Every member's pod is deleted (a rebuild: the lost members' claims too).
    Stopping,
    /// No member runs: each is started from the backup.
    Starting,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRecovery {
    /// The member that restarts as a one-member cluster with its data.
    pub survivor: String,
    /// The members discarded (removed with their claims, replaced by new learners).
    pub lost: Vec<String>,
    pub stage: RecoveryStage,
    /// The survivor's revision when it was chosen.
    pub revision: i64,
    /// The newest revision the operator had seen before quorum was lost: writes between
    /// `revision` and this one may be lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_revision: Option<i64>,
    /// RFC 3339: when recovery started.
    pub started: String,
    /// RFC 3339: when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RecoveryStage {
    /// The survivor runs with --force-new-cluster until it is a one-member cluster.
    Forcing,
    /// Restarted without the flag (a forced start discards whatever membership there is:
    /// it must not happen again once members are added back).
    Restarting,
}

/// The newest backups that reached S3.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_revision: Option<i64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_time: Option<String>,
}

/// The last defragmentation of the cluster's members.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastDefrag {
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Bytes given back, over all members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimed_bytes: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedChange {
    /// adding (a learner, then its pod, then its promotion) or removing (then its pod and claim).
    pub kind: ChangeKind,
    pub member: String,
    /// When it started, in seconds since the epoch.
    pub since: i64,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    Adding,
    Removing,
    /// Its pod made again from the spec as it is now, then waited for.
    Updating,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub name: String,
    /// The member id, in hex as etcdctl prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub learner: bool,
    #[serde(default)]
    pub healthy: bool,
}
