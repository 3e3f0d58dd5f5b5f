//! The hash ring of `consistentHash` (Envoy's `RING_HASH`): each endpoint
//! owns many points on a 64-bit circle, and a request's key hash goes to
//! the owner of the first point at or after it. Adding or removing one
//! endpoint moves its own keys and few others (each endpoint's points are
//! `minimumRingSize / endpoints`, as Envoy makes them, so the others gain
//! some points); an ejected endpoint's keys go to the next point's owner
//! while every other key stays where it was.
//!
//! Pure: no I/O, no clock, no randomness; the same endpoints always make
//! the same ring (in every replica, across restarts).

/// Envoy's default `minimum_ring_size`: enough points that each of a few
/// endpoints gets a share within a few per cent of the others.
pub const MIN_RING_SIZE: usize = 1024;
/// Envoy's default `maximum_ring_size` is 8M; far more than gatehouse's
/// clusters need, so it caps memory instead.
const MAX_RING_SIZE: usize = 1 << 20;

/// The points of one cluster's endpoints, sorted by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// (point hash, endpoint index).
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// A ring over endpoints named `keys` (their addresses as text), with
    /// at least `min_size` points in all.
    pub fn new(keys: &[String], min_size: usize) -> Ring {
        if keys.is_empty() {
            return Ring { points: Vec::new() };
        }
        let per = min_size
            .max(keys.len())
            .min(MAX_RING_SIZE)
            .div_ceil(keys.len());
        let mut points = Vec::with_capacity(per * keys.len());
        for (i, k) in keys.iter().enumerate() {
            for replica in 0..per {
                points.push((hash(format!("{k}_{replica}").as_bytes()), i));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The endpoints in ring order from `h`'s point: the owner first, then
    /// the next distinct owners (for when the first is ejected). Each
    /// endpoint index may repeat; callers stop at the first they can use.
    pub fn walk(&self, h: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(p, _)| *p < h);
        let (after, before) = self.points.split_at(start);
        before.iter().chain(after).map(|(_, i)| *i)
    }
}

/// The 64-bit hash of a request key or a ring point: FNV-1a, then the
/// splitmix64 finalizer, so that near keys (`10.0.0.1_0`, `10.0.0.1_1`)
/// land far apart on the circle.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    #[test]
    fn keys_spread_over_the_endpoints() {
        let ring = Ring::new(&keys(4), MIN_RING_SIZE);
        let mut count = [0u32; 4];
        for k in 0..40_000u32 {
            let owner = ring.walk(hash(&k.to_le_bytes())).next().unwrap();
            count[owner] += 1;
        }
        for c in count {
            assert!((7_000..13_000).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn removing_an_endpoint_moves_few_other_keys() {
        let all = keys(4);
        let ring4 = Ring::new(&all, MIN_RING_SIZE);
        let ring3 = Ring::new(&all[..3], MIN_RING_SIZE);
        let (mut kept, mut moved) = (0, 0);
        for k in 0..10_000u32 {
            let h = hash(&k.to_le_bytes());
            let before = ring4.walk(h).next().unwrap();
            let after = ring3.walk(h).next().unwrap();
            if before != 3 {
                kept += 1;
                moved += usize::from(before != after);
            }
        }
        // A modulo over the endpoints would move two thirds of them.
        assert!(moved * 5 < kept, "{moved} of {kept} moved");
    }

    #[test]
    fn the_walk_visits_the_next_owner_and_wraps() {
        let ring = Ring::new(&keys(2), 8);
        let first: Vec<usize> = ring.walk(u64::MAX).take(8).collect();
        assert_eq!(first.len(), 8);
        assert!(first.contains(&0) && first.contains(&1));
        assert!(Ring::new(&[], 8).walk(1).next().is_none());
    }
}
