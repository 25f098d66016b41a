//! What makes a member's pod out of date: a hash of what the spec asks of it, recorded on the
//! pod when it is made. A pod whose hash differs from the spec's is updated by the roll.

use k8s_openapi::api::core::v1::Pod;

/// The annotation holding the hash.
pub const POD_HASH: &str = "cairn.dev/pod-hash";

/// Flags that depend on when a pod was made, not on the spec: a member that has run ignores
/// them. (A recovery's --force-new-cluster is added after the hash is stamped.)
fn made_when(arg: &str) -> bool {
    arg.starts_with("--initial-cluster=") || arg.starts_with("--initial-cluster-state=")
}

/// The hash of a pod as the spec makes it: its labels, annotations and spec, without the
/// hash itself, the flags above, or a restore init container (it runs once, before the
/// member's first start).
pub fn of(p: &Pod) -> String {
    let mut p = p.clone();
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.remove(POD_HASH);
    }
    p.metadata.annotations = p.metadata.annotations.filter(|a| !a.is_empty());
    if let Some(s) = p.spec.as_mut() {
        s.init_containers = None;
        for c in &mut s.containers {
            if let Some(args) = c.args.as_mut() {
                args.retain(|a| !made_when(a));
            }
        }
    }
    let text = serde_json::to_string(&(&p.metadata.labels, &p.metadata.annotations, &p.spec)).unwrap_or_default();
    format!("{:016x}", fnv1a(text.as_bytes()))
}

/// Records the hash on the pod.
pub fn stamp(p: &mut Pod) {
    let hash = of(p);
    p.metadata.annotations.get_or_insert_with(Default::default).insert(POD_HASH.into(), hash);
}

/// The hash a pod was made with, if any.
pub fn recorded(p: &Pod) -> Option<&str> {
    p.metadata.annotations.as_ref()?.get(POD_HASH).map(String::as_str)
}

/// FNV-1a, 64 bits: stable across Rust releases (std's hasher is not promised to be), so a
/// new operator build does not see every pod as out of date.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a() {
        // FNV's published test vector: the function is the standard one, and stays it.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
