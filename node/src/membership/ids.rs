//! Member and cluster ids derived as etcd derives them, so the same flags give the same ids:
//! a member id is the first 8 bytes (big-endian) of SHA-1 over its sorted peer URLs joined,
//! then the cluster token; the cluster id hashes the sorted member ids the same way.

use sha1::{Digest, Sha1};

pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(d: &[u8]) -> u64 {
    u64::from_be_bytes(d[..8].try_into().expect("sha1 is 20 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_what_etcd_derives_for_the_same_flags() {
        // etcd 3.4.23 started with --initial-advertise-peer-urls http://127.0.0.1:23800 and
        // the default token reported these ids.
        let m = member_id(&["http://127.0.0.1:23800".to_string()], "etcd-cluster");
        assert_eq!(m, 3319814642761637952);
        assert_eq!(cluster_id(&[m]), 324952591200643719);
    }
}
