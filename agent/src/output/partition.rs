//! Partition choice the agent makes itself from the topic's metadata: round robin (librdkafka has
//! no round-robin partitioner for keyless records), and Filebeat's hash of a record's key (so a
//! key lands on the partition Filebeat gave it, which librdkafka's murmur2 would not).
//!
//! Owns the per-topic rotation position. Invariant: with `group_events = n`, runs of exactly `n`
//! consecutive records go to one partition before the next partition is used, cycling through the
//! partitions in order; with `reachable_only`, only partitions whose leader is up are used (all of
//! them when none is known to be up, so records wait in librdkafka rather than being refused).

#[derive(Debug, Clone)]
pub struct RoundRobin {
    group_events: usize,
    next: usize,
    in_group: usize,
}

impl RoundRobin {
    pub fn new(group_events: usize) -> RoundRobin {
        RoundRobin { group_events: group_events.max(1), next: 0, in_group: 0 }
    }

    /// The partition for the next record, among `all`, preferring `reachable` when given.
    pub fn choose(&mut self, all: &[i32], reachable: Option<&[i32]>) -> Option<i32> {
        let set = match reachable {
            Some(r) if !r.is_empty() => r,
            _ => all,
        };
        if set.is_empty() {
            return None;
        }
        if self.in_group >= self.group_events {
            self.in_group = 0;
            self.next = self.next.wrapping_add(1);
        }
        self.in_group += 1;
        Some(set[self.next % set.len()])
    }
}

/// Filebeat's hash partitioner: FNV-1a (32 bits) of the key, `(hash as i32 & 0x7fffffff) %
/// partitions`, as an index into the topic's partitions; `None` while none are known.
pub fn filebeat_hash(key: &[u8], partitions: &[i32]) -> Option<i32> {
    if partitions.is_empty() {
        return None;
    }
    let hash = key.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
    let index = ((hash as i32) & 0x7fff_ffff) as usize % partitions.len();
    Some(partitions[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(rr: &mut RoundRobin, all: &[i32], reachable: Option<&[i32]>, n: usize) -> Vec<i32> {
        (0..n).map(|_| rr.choose(all, reachable).unwrap()).collect()
    }

    #[test]
    fn cycles_through_partitions_one_event_each() {
        let mut rr = RoundRobin::new(1);
        assert_eq!(take(&mut rr, &[0, 1, 2], None, 7), vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn group_events_keeps_runs_on_one_partition() {
        let mut rr = RoundRobin::new(3);
        assert_eq!(take(&mut rr, &[0, 1], None, 8), vec![0, 0, 0, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn reachable_only_skips_partitions_whose_leader_is_down() {
        let mut rr = RoundRobin::new(1);
        let got = take(&mut rr, &[0, 1, 2], Some(&[0, 2]), 6);
        assert!(!got.contains(&1));
        assert_eq!(got.iter().filter(|&&p| p == 0).count(), 3);
        // Nobody known to be up: fall back to all partitions instead of refusing.
        assert_eq!(take(&mut rr, &[5], Some(&[]), 2), vec![5, 5]);
    }

    #[test]
    fn keys_hash_to_filebeats_partitions() {
        // FNV-1a of "a" is 0xe40c292c: (0xe40c292c as i32 & 0x7fffffff) % 3 == 0x640c292c % 3.
        assert_eq!(filebeat_hash(b"a", &[0, 1, 2]), Some((0x640c_292c_u32 % 3) as i32));
        assert_eq!(filebeat_hash(b"", &[0, 1, 2]), Some((0x011c_9dc5_u32 % 3) as i32));
        assert_eq!(filebeat_hash(b"a", &[]), None);
        let keys: Vec<i32> = (0..300).map(|i| filebeat_hash(format!("k{i}").as_bytes(), &[0, 1, 2]).unwrap()).collect();
        assert!((0..3).all(|p| keys.iter().filter(|&&k| k == p).count() > 60), "keys spread over partitions");
    }

    #[test]
    fn no_partitions_known_means_no_choice() {
        assert_eq!(RoundRobin::new(1).choose(&[], None), None);
    }
}
