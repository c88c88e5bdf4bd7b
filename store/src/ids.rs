//! Member and cluster ids, derived the way etcd derives them: the first 8 bytes of a SHA-1.

use sha1::{Digest, Sha1};

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// A member id from its peer URLs, the cluster token and, for runtime adds, the time.
pub fn member_id(peer_urls: &[String], token: &str, now_secs: Option<u64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    if let Some(t) = now_secs {
        h.update(t.to_be_bytes());
    }
    first_u64(&h.finalize()).max(1)
}

/// A cluster id from the ids of its bootstrap members and the token.
pub fn cluster_id(member_ids: &[u64], token: &str) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize()).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_order_free() {
        let a = member_id(&["http://a:2380".into(), "http://b:2380".into()], "t", None);
        let b = member_id(&["http://b:2380".into(), "http://a:2380".into()], "t", None);
        assert_eq!(a, b);
        assert_ne!(a, member_id(&["http://a:2380".into()], "t", None));
        assert_ne!(
            a,
            member_id(&["http://a:2380".into(), "http://b:2380".into()], "u", None)
        );
        assert_eq!(cluster_id(&[1, 2, 3], "t"), cluster_id(&[3, 1, 2], "t"));
        assert_ne!(cluster_id(&[1, 2, 3], "t"), cluster_id(&[1, 2, 3], "u"));
    }
}
