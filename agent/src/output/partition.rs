//! Partition choice the agent makes itself from the topic's metadata: round robin (librdkafka has
//! no round-robin partitioner for keyless records), and Filebeat's hash of a record's key or of
//! chosen event fields (`partition.hash.hash`), so a record lands on the partition Filebeat gave
//! it, which librdkafka's murmur2 would not.
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

const FNV_OFFSET: u32 = 0x811c_9dc5;

/// FNV-1a (32 bits) continued over more bytes.
fn fnv1a(hash: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// Filebeat's hash partitioner: FNV-1a (32 bits) of the key, then [`partition_of`].
pub fn filebeat_hash(key: &[u8], partitions: &[i32]) -> Option<i32> {
    partition_of(fnv1a(FNV_OFFSET, key), partitions)
}

/// `(hash as i32 & 0x7fffffff) % partitions`, as an index into the topic's partitions (Filebeat's
/// `hash2Partition`); `None` while none are known.
pub fn partition_of(hash: u32, partitions: &[i32]) -> Option<i32> {
    if partitions.is_empty() {
        return None;
    }
    let index = ((hash as i32) & 0x7fff_ffff) as usize % partitions.len();
    Some(partitions[index])
}

/// Filebeat's `partition.hash.hash`: FNV-1a over the named fields' values in order (text as its
/// bytes, integers as 8 little-endian bytes, floats as `FormatFloat(v, 'g', -1, 32)`, booleans as
/// one byte), or why a field cannot be hashed (missing, null, an object or a list). `@timestamp`
/// and `@metadata` are not event fields there, so they count as missing.
pub fn hash_fields(ev: &serde_json::Map<String, serde_json::Value>, fields: &[String]) -> Result<u32, String> {
    use serde_json::Value;
    let mut h = FNV_OFFSET;
    for f in fields {
        let v = match f.split('.').next() {
            Some("@timestamp" | "@metadata") => None,
            _ => crate::event::lookup_value(ev, f),
        };
        h = match v {
            Some(Value::String(s)) => fnv1a(h, s.as_bytes()),
            Some(Value::Bool(b)) => fnv1a(h, &[u8::from(*b)]),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => fnv1a(h, &i.to_le_bytes()),
                (None, Some(u)) => fnv1a(h, &u.to_le_bytes()),
                _ => fnv1a(h, crate::event::gofmt::float(n.as_f64().unwrap_or_default(), 6, true).as_bytes()),
            },
            Some(_) => return Err(format!("can not hash key '{f}' of unknown type")),
            None => return Err(format!("key not found: {f}")),
        };
    }
    Ok(h)
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
    fn fields_hash_in_order_over_their_bytes_and_missing_ones_are_errors() {
        let ev = serde_json::json!({"s": "ab", "n": 5, "f": 1.5, "b": true, "o": {"x": 1}, "@timestamp": "t"});
        let ev = ev.as_object().unwrap();
        let fields = |l: &[&str]| hash_fields(ev, &l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let bytes: Vec<u8> = [&b"ab"[..], &5i64.to_le_bytes(), b"1.5", &[1]].concat();
        assert_eq!(fields(&["s", "n", "f", "b"]), Ok(fnv1a(FNV_OFFSET, &bytes)));
        assert_ne!(fields(&["n", "s"]), fields(&["s", "n"]), "order matters");
        for bad in ["missing", "o", "@timestamp"] {
            assert!(fields(&["s", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_partitions_known_means_no_choice() {
        assert_eq!(RoundRobin::new(1).choose(&[], None), None);
    }
}
