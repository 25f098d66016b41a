//! The member pods' security settings: by default what the `restricted` Pod Security level
//! asks (non-root, no privilege escalation, every capability dropped, RuntimeDefault seccomp)
//! and a read-only root file system, the data volume and /tmp being the only places written.
//! `spec.pod.securityContext` and `spec.pod.containerSecurityContext` replace them.

use crate::crd::CairnCluster;
use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext};

/// The user and group members run as (distroless's `nonroot`); the group owns the volume.
pub const MEMBER_ID: i64 = 65532;

pub fn pod(c: &CairnCluster) -> PodSecurityContext {
    if let Some(own) = c.spec.pod.as_ref().and_then(|p| p.security_context.clone()) {
        return own;
    }
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(MEMBER_ID),
        run_as_group: Some(MEMBER_ID),
        fs_group: Some(MEMBER_ID),
        // Only when the volume's owner differs: a large data dir is not walked at every start.
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

pub fn container(c: &CairnCluster) -> SecurityContext {
    if let Some(own) = c.spec.pod.as_ref().and_then(|p| p.container_security_context.clone()) {
        return own;
    }
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        read_only_root_filesystem: Some(true),
        ..Default::default()
    }
}
