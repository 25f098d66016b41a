//! A member's claim and pod. The pod runs `cairn` with etcd's flags: it listens on its pod IP
//! ($(POD_IP), from the downward API), advertises its stable DNS name under the headless
//! Service, and is ready when /health says so.

use super::{member_host, owned_meta, peer_service, peer_url, CLIENT_PORT, MEMBER_LABEL, PEER_PORT};
use crate::crd::{CairnCluster, Placement, RestoreSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodAffinityTerm,
    PodAntiAffinity, PodSpec, Probe, SecretKeySelector, Toleration, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

pub const DATA_DIR: &str = "/var/lib/cairn";

/// How a member's first start joins: founders form the cluster, later members join it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    New,
    Existing,
}

fn member_labels(member: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(MEMBER_LABEL.to_string(), member.to_string())])
}

/// The token member and cluster ids derive from: unique per CairnCluster object.
pub fn cluster_token(c: &CairnCluster) -> String {
    format!("{}-{}", super::name(c), c.metadata.uid.as_deref().unwrap_or_default())
}

pub fn claim(c: &CairnCluster, member: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: owned_meta(c, member, member_labels(member)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: c.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(c.spec.storage.size.clone()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("client".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// A writable /tmp under a read-only root file system.
fn tmp_mount() -> VolumeMount {
    VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() }
}

/// The member's claim, where the container (and a restore before it) keeps the data dir.
fn data_mount() -> Vec<VolumeMount> {
    vec![VolumeMount { name: "data".into(), mount_path: DATA_DIR.into(), ..Default::default() }]
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: None }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How a restore init container treats the data dir it finds.
#[derive(Clone, Debug, PartialEq)]
pub enum RestoreInto {
    /// A new cluster's founder: only a missing data dir is restored.
    Missing,
    /// Every member of an existing cluster, stopped: the data dir is replaced (kept beside
    /// it), once per restore id, and the revision bumped.
    Replace { id: String, bump_revision: i64 },
}

/// The init container of a founder of a cluster restored from a backup: `cairn restore`
/// makes its data dir (the same full snapshot and deltas for every founder, each with its own
/// name) before the member first starts, and does nothing when it runs again.
fn restore_container(c: &CairnCluster, member: &str, cluster: &str, r: &RestoreSpec, into: &RestoreInto) -> Container {
    let mut args = vec!["restore".to_string()];
    match into {
        RestoreInto::Missing => args.push("--if-missing".into()),
        RestoreInto::Replace { id, bump_revision } => {
            args.extend(["--replace".into(), format!("--restore-id={id}")]);
            if *bump_revision > 0 {
                args.extend([format!("--bump-revision={bump_revision}"), "--mark-compacted".into()]);
            }
        }
    }
    args.extend([format!("--s3-bucket={}", r.s3.bucket), format!("--s3-prefix={}", r.s3.prefix)]);
    args.extend(r.s3.endpoint.iter().map(|e| format!("--s3-endpoint={e}")));
    args.extend(r.s3.region.iter().map(|e| format!("--s3-region={e}")));
    if r.s3.force_path_style {
        args.push("--s3-force-path-style".into());
    }
    args.extend(r.revision.iter().map(|v| format!("--revision={v}")));
    args.extend(r.time.iter().map(|t| format!("--time={t}")));
    args.extend([
        format!("--name={member}"),
        format!("--data-dir={DATA_DIR}/data"),
        format!("--initial-cluster={cluster}"),
        format!("--initial-cluster-token={}", cluster_token(c)),
        format!("--initial-advertise-peer-urls={}", peer_url(c, member)),
    ]);
    let mut env = match &r.s3.credentials_secret {
        Some(secret) => vec![
            secret_env("AWS_ACCESS_KEY_ID", secret, "accessKeyId"),
            secret_env("AWS_SECRET_ACCESS_KEY", secret, "secretAccessKey"),
        ],
        // The default credential chain, from what the pod has.
        None => Vec::new(),
    };
    env.extend(c.spec.pod.iter().flat_map(|p| p.env.iter().cloned()));
    Container {
        name: "restore".into(),
        image: Some(c.spec.image.clone()),
        command: Some(vec!["cairn".into()]),
        args: Some(args),
        env: (!env.is_empty()).then_some(env),
        volume_mounts: Some(data_mount()),
        resources: c.spec.resources.clone(),
        security_context: Some(super::security::container(c)),
        ..Default::default()
    }
}

/// What starts a member from its data as a one-member cluster (etcd's flag).
pub const FORCE_NEW_CLUSTER: &str = "--force-new-cluster";

/// The pod of the survivor of a quorum lost for good: its member starts from its data as a
/// one-member cluster, the old membership discarded.
pub fn forced_pod(c: &CairnCluster, member: &str) -> Pod {
    let mut p = pod(c, member, &[member.to_string()], Join::Existing);
    if let Some(args) = p.spec.as_mut().and_then(|s| s.containers[0].args.as_mut()) {
        args.push(FORCE_NEW_CLUSTER.into());
    }
    p
}

/// Whether a member's pod starts it with --force-new-cluster.
pub fn is_forced(p: &Pod) -> bool {
    let args = p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.args.as_ref());
    args.is_some_and(|a| a.iter().any(|x| x == FORCE_NEW_CLUSTER))
}

/// `initial_cluster`: the members to name in --initial-cluster (founders, or the member list
/// as MemberAdd left it), this one included.
pub fn pod(c: &CairnCluster, member: &str, initial_cluster: &[String], join: Join) -> Pod {
    // Founders of a restored cluster start from the backup; members added later join it.
    let restore = c.spec.bootstrap.as_ref().and_then(|b| b.restore.as_ref()).filter(|_| join == Join::New);
    pod_with(c, member, initial_cluster, join, restore.map(|r| (r, RestoreInto::Missing)))
}

/// The pod of a founder of a cluster restored in place (every member stopped first): its
/// data dir comes from the backup, `founders` form the cluster again.
pub fn restored_pod(c: &CairnCluster, member: &str, founders: &[String], r: &RestoreSpec, into: RestoreInto) -> Pod {
    pod_with(c, member, founders, Join::New, Some((r, into)))
}

fn pod_with(
    c: &CairnCluster,
    member: &str,
    initial_cluster: &[String],
    join: Join,
    restore: Option<(&RestoreSpec, RestoreInto)>,
) -> Pod {
    let cluster: Vec<String> = initial_cluster.iter().map(|m| format!("{m}={}", peer_url(c, m))).collect();
    let state = match join {
        Join::New => "new",
        Join::Existing => "existing",
    };
    let args = vec![
        format!("--name={member}"),
        format!("--data-dir={DATA_DIR}/data"),
        format!("--listen-client-urls=http://$(POD_IP):{CLIENT_PORT}"),
        format!("--advertise-client-urls=http://{}:{CLIENT_PORT}", member_host(c, member)),
        format!("--listen-peer-urls=http://$(POD_IP):{PEER_PORT}"),
        format!("--initial-advertise-peer-urls={}", peer_url(c, member)),
        format!("--initial-cluster={}", cluster.join(",")),
        format!("--initial-cluster-state={state}"),
        format!("--initial-cluster-token={}", cluster_token(c)),
    ];
    let args = [args, super::settings::flags(&c.spec.etcd)].concat();
    let init = restore.map(|(r, into)| vec![restore_container(c, member, &cluster.join(","), r, &into)]);
    let port = |name: &str, p: i32| ContainerPort { name: Some(name.into()), container_port: p, ..Default::default() };
    let overrides = c.spec.pod.clone().unwrap_or_default();
    let mut env = vec![field_env("POD_IP", "status.podIP"), field_env("POD_NAME", "metadata.name")];
    env.extend(overrides.env);
    let container = Container {
        name: "cairn".into(),
        image: Some(c.spec.image.clone()),
        command: Some(vec!["cairn".into()]),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![port("client", CLIENT_PORT), port("peer", PEER_PORT)]),
        // Ready: a leader, and a linearizable read goes through (/health).
        readiness_probe: Some(probe("/health", 2, 3)),
        // Alive: the process answers at all (/version). Never /health: a member that is behind,
        // defragmenting or cut off from its peers must not be killed for it.
        liveness_probe: Some(Probe { timeout_seconds: Some(15), ..probe("/version", 10, 8) }),
        // Up to 10 minutes to open a large database and replay its log before liveness counts.
        startup_probe: Some(probe("/version", 5, 120)),
        volume_mounts: Some([data_mount(), vec![tmp_mount()]].concat()),
        resources: c.spec.resources.clone(),
        security_context: Some(super::security::container(c)),
        ..Default::default()
    };
    let mut meta = owned_meta(c, member, member_labels(member));
    meta.labels.get_or_insert_with(BTreeMap::new).extend(overrides.labels);
    if !overrides.annotations.is_empty() {
        meta.annotations = Some(overrides.annotations);
    }
    let mut node_selector = overrides.node_selector;
    let mut tolerations = overrides.tolerations;
    // The user's rules, with the placement's added.
    let mut affinity = overrides.affinity.unwrap_or_default();
    match c.spec.placement {
        Placement::External => {
            // One member per node: kubeadm's external etcd topology.
            let term = PodAffinityTerm {
                label_selector: Some(LabelSelector { match_labels: Some(super::labels(c)), ..Default::default() }),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            };
            let anti = affinity.pod_anti_affinity.get_or_insert_with(PodAntiAffinity::default);
            anti.required_during_scheduling_ignored_during_execution.get_or_insert_with(Vec::new).push(term);
        }
        Placement::Stacked => {
            node_selector.insert("node-role.kubernetes.io/control-plane".into(), String::new());
            tolerations.push(Toleration {
                key: Some("node-role.kubernetes.io/control-plane".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            });
        }
    }
    let mut pod = Pod {
        metadata: meta,
        spec: Some(PodSpec {
            hostname: Some(member.into()),
            subdomain: Some(peer_service(c)),
            init_containers: init,
            containers: vec![container],
            volumes: Some(vec![
                Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: member.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
            ]),
            node_selector: (!node_selector.is_empty()).then_some(node_selector),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            affinity: (affinity != Affinity::default()).then_some(affinity),
            topology_spread_constraints: (!overrides.topology_spread_constraints.is_empty())
                .then_some(overrides.topology_spread_constraints),
            image_pull_secrets: (!overrides.image_pull_secrets.is_empty()).then_some(overrides.image_pull_secrets),
            security_context: Some(super::security::pod(c)),
            priority_class_name: overrides.priority_class_name,
            service_account_name: overrides.service_account_name,
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        }),
        ..Default::default()
    };
    super::pod_hash::stamp(&mut pod);
    pod
}

/// Whether a member's pod differs from what the spec asks of it now.
pub fn is_outdated(c: &CairnCluster, member: &str, p: &Pod) -> bool {
    let want = pod(c, member, &[member.to_string()], Join::Existing);
    super::pod_hash::recorded(p) != super::pod_hash::recorded(&want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::sample;

    fn args(p: &Pod) -> Vec<String> {
        p.spec.as_ref().unwrap().containers[0].args.clone().unwrap()
    }

    #[test]
    fn a_founder_forms_the_cluster_from_stable_names() {
        let c = sample("demo", "replicas: 3");
        let p = pod(&c, "demo-1", &["demo-0".into(), "demo-1".into(), "demo-2".into()], Join::New);
        let a = args(&p);
        assert!(a.contains(&"--name=demo-1".to_string()));
        assert!(a.contains(&"--listen-peer-urls=http://$(POD_IP):2380".to_string()));
        assert!(
            a.contains(&"--initial-advertise-peer-urls=http://demo-1.demo-peer.ns.svc.cluster.local:2380".to_string())
        );
        assert!(a.contains(&"--initial-cluster-state=new".to_string()));
        assert!(a.contains(&"--initial-cluster-token=demo-uid-1".to_string()));
        let cluster = a.iter().find(|x| x.starts_with("--initial-cluster=")).unwrap();
        assert_eq!(cluster.matches(".demo-peer.ns.svc.cluster.local:2380").count(), 3);
        let spec = p.spec.unwrap();
        assert_eq!(spec.subdomain.as_deref(), Some("demo-peer"));
        assert_eq!(spec.volumes.unwrap()[0].persistent_volume_claim.as_ref().unwrap().claim_name, "demo-1");
        assert!(spec.affinity.unwrap().pod_anti_affinity.is_some(), "external: one member per node");
        assert_eq!(p.metadata.labels.unwrap()["cairn.dev/member"], "demo-1");
    }

    #[test]
    fn founders_of_a_restored_cluster_restore_first() {
        let c = sample(
            "demo",
            "{replicas: 3, bootstrap: {restore: {s3: {bucket: b, prefix: p/q, endpoint: 'http://s3:9000', forcePathStyle: true, credentialsSecret: creds}, revision: 42}}}",
        );
        let founders = ["demo-0".to_string(), "demo-1".into(), "demo-2".into()];
        let p = pod(&c, "demo-1", &founders, Join::New);
        let init = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        let a = init.args.clone().unwrap();
        for want in [
            "restore",
            "--if-missing",
            "--s3-bucket=b",
            "--s3-prefix=p/q",
            "--s3-endpoint=http://s3:9000",
            "--s3-force-path-style",
            "--revision=42",
            "--name=demo-1",
            "--data-dir=/var/lib/cairn/data",
            "--initial-cluster-token=demo-uid-1",
        ] {
            assert!(a.contains(&want.to_string()), "{want} in {a:?}");
        }
        let main = args(&p);
        let flag = |list: &[String], f: &str| list.iter().find(|x| x.starts_with(f)).cloned();
        assert_eq!(flag(&a, "--initial-cluster="), flag(&main, "--initial-cluster="));
        assert_eq!(flag(&a, "--initial-advertise-peer-urls="), flag(&main, "--initial-advertise-peer-urls="));
        let env = init.env.clone().unwrap();
        assert_eq!(env[0].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().key, "accessKeyId");
        // A member added later joins the restored cluster: nothing to restore.
        let added = pod(&c, "demo-3", &founders, Join::Existing);
        assert!(added.spec.unwrap().init_containers.is_none());
    }

    #[test]
    fn without_a_secret_the_restore_uses_what_the_pod_has() {
        let c = sample(
            "demo",
            "{bootstrap: {restore: {s3: {bucket: b}}}, pod: {serviceAccountName: backups, env: [{name: AWS_REGION, value: eu-west-1}]}}",
        );
        let p = pod(&c, "demo-0", &["demo-0".into()], Join::New);
        let spec = p.spec.unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some("backups"));
        let names = |c: &Container| c.env.iter().flatten().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&spec.init_containers.unwrap()[0]), ["AWS_REGION"]);
        assert_eq!(names(&spec.containers[0]), ["POD_IP", "POD_NAME", "AWS_REGION"]);
    }

    #[test]
    fn an_added_member_joins_and_stacked_members_go_to_the_control_plane() {
        let c = sample("cp", "{replicas: 3, placement: stacked, pod: {labels: {team: infra}}}");
        let p = pod(&c, "cp-3", &["cp-0".into(), "cp-3".into()], Join::Existing);
        assert!(args(&p).contains(&"--initial-cluster-state=existing".to_string()));
        let spec = p.spec.unwrap();
        assert!(spec.node_selector.unwrap().contains_key("node-role.kubernetes.io/control-plane"));
        assert_eq!(spec.tolerations.unwrap()[0].effect.as_deref(), Some("NoSchedule"));
        assert!(spec.affinity.is_none());
        assert_eq!(p.metadata.labels.unwrap()["team"], "infra");
        let claim = claim(&c, "cp-3");
        assert_eq!(claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"], Quantity("10Gi".into()));
    }

    #[test]
    fn the_pod_hash_follows_the_spec_not_when_the_pod_was_made() {
        use crate::resources::pod_hash::{of, recorded};
        let c = sample("demo", "{replicas: 3}");
        let founder = pod(&c, "demo-1", &["demo-0".into(), "demo-1".into(), "demo-2".into()], Join::New);
        let later = pod(&c, "demo-1", &["demo-1".into()], Join::Existing);
        assert_eq!(recorded(&founder), recorded(&later));
        assert_eq!(recorded(&founder), Some(of(&founder).as_str()));
        assert_eq!(recorded(&forced_pod(&c, "demo-1")), recorded(&later), "a recovery's pod is not out of date");
        for changed in [
            "{replicas: 3, image: 'cairn:9'}",
            "{replicas: 3, etcd: {snapshotCount: 7}}",
            "{replicas: 3, pod: {labels: {a: b}}}",
        ] {
            let p = pod(&sample("demo", changed), "demo-1", &["demo-1".into()], Join::Existing);
            assert_ne!(recorded(&p), recorded(&later), "{changed}");
            assert!(is_outdated(&sample("demo", changed), "demo-1", &later), "{changed}");
        }
        assert!(!is_outdated(&c, "demo-1", &founder));
    }
}
