//! Kafka helpers for the harness: read a topic back (counting and sampling records) and the raw
//! librdkafka producer used as the ceiling. Both use the same rdkafka build as the agent.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// What reading a topic back found.
pub struct ReadBack {
    pub records: u64,
    pub bytes: u64,
    /// Up to `sample` record values, in arrival order.
    pub sample: Vec<Vec<u8>>,
    /// When the last record arrived.
    pub last_at: Option<Instant>,
}

/// Which topic to read back, and when to stop.
pub struct ReadSpec<'a> {
    pub bootstrap: &'a str,
    pub topic: &'a str,
    pub partitions: i32,
    /// Stop once this many records arrived.
    pub expect: u64,
    /// Stop when nothing new arrived for this long.
    pub idle: Duration,
    pub timeout: Duration,
    /// Keep up to this many record values.
    pub sample: usize,
}

/// A consumer assigned to every partition of a topic from the beginning, by explicit assignment
/// (no consumer group: tansu's group support is not needed and the mock cluster's rebalance
/// delay is avoided). It can be opened before anything is written (the live case), so the
/// time it takes to connect and look up offsets is not counted as a target's delay.
pub struct TopicReader {
    consumer: BaseConsumer,
}

impl TopicReader {
    /// `fetch_wait_ms` is how long the broker may hold a fetch that finds nothing new: short for
    /// the live case (a record is seen as soon as it is in), longer to read a backlog.
    pub fn open(bootstrap: &str, topic: &str, partitions: i32, fetch_wait_ms: u32) -> anyhow::Result<TopicReader> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "bench-readback")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        Ok(TopicReader { consumer })
    }

    /// Polls until the spec says to stop; `on_record` sees each value. Can be called again to
    /// go on from where the last call stopped.
    pub fn read(&self, spec: &ReadSpec<'_>, mut on_record: impl FnMut(&[u8])) -> ReadBack {
        let start = Instant::now();
        let mut rb = ReadBack { records: 0, bytes: 0, sample: Vec::new(), last_at: None };
        let mut last_progress = Instant::now();
        while rb.records < spec.expect && start.elapsed() < spec.timeout && last_progress.elapsed() < spec.idle {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let v = m.payload().unwrap_or_default();
                    rb.records += 1;
                    rb.bytes += v.len() as u64;
                    if rb.sample.len() < spec.sample {
                        rb.sample.push(v.to_vec());
                    }
                    on_record(v);
                    rb.last_at = Some(Instant::now());
                    last_progress = Instant::now();
                }
                Some(Err(e)) => eprintln!("read-back error: {e}"),
                None => {}
            }
        }
        rb
    }
}

/// Reads every partition from the beginning until the spec says to stop; `on_record` sees each
/// value.
pub fn read_back(spec: &ReadSpec<'_>, on_record: impl FnMut(&[u8])) -> anyhow::Result<ReadBack> {
    let reader = TopicReader::open(spec.bootstrap, spec.topic, spec.partitions, 50)?;
    Ok(reader.read(spec, on_record))
}

/// The ceiling: read each file, one record per line, explicit round robin over the partitions,
/// the same librdkafka settings as the agent; nothing else (no offsets, no events). With
/// `id_header`, each record also carries an `_id` header shaped like the agent's event ids.
pub fn ceiling(
    bootstrap: &str,
    topic: &str,
    spec: &crate::targets::Settings,
    id_header: bool,
    files: &[std::path::PathBuf],
) -> anyhow::Result<u64> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    use std::io::BufRead;
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.codec", "gzip")
        .set("compression.level", spec.level.to_string())
        .set("acks", spec.acks.to_string())
        .set("batch.num.messages", spec.batch.to_string())
        .set("linger.ms", spec.linger_ms.to_string())
        .set("message.timeout.ms", "0")
        .create()?;
    let mut sent = 0u64;
    let mut line = Vec::with_capacity(1024);
    for (n, path) in files.iter().enumerate() {
        let mut r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        let mut offset = 0u64;
        loop {
            line.clear();
            let read = r.read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            let id = id_header.then(|| event_id_like(n as u64, offset, read as u64));
            offset += read as u64;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let partition = (sent % spec.partitions.max(1) as u64) as i32;
            let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(&line[..]).partition(partition);
            if let Some(id) = &id {
                let h = OwnedHeaders::new_with_capacity(1).insert(Header { key: "_id", value: Some(&id[..]) });
                rec = rec.headers(h);
            }
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => anyhow::bail!("produce failed: {e}"),
                }
            }
            sent += 1;
        }
    }
    producer.flush(rdkafka::util::Timeout::Never)?;
    Ok(sent)
}

/// 24 URL-safe base64 characters of 48 bits of a per-file constant, the line's start and its
/// length: the agent's event id layout (`agent::event::id`), so the header compresses as the
/// agent's does.
fn event_id_like(file: u64, start: u64, len: u64) -> [u8; 24] {
    let constant = 0x5bd1_e995_u64.wrapping_mul(file + 1);
    let mut raw = [0u8; 18];
    for (i, v) in [constant, start, len].into_iter().enumerate() {
        // The low 48 bits, big-endian.
        raw[i * 6..i * 6 + 6].copy_from_slice(&v.to_be_bytes()[2..]);
    }
    let mut out = [0u8; 24];
    data_encoding::BASE64URL_NOPAD.encode_mut(&raw, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ceiling_ids_are_laid_out_as_the_agents() {
        let id = super::event_id_like(0, 0x0102_0304_0506, 5);
        // Base64 (URL-safe) of the 6 bytes 01..06 and of 5 in 6 bytes, as the agent encodes them.
        assert_eq!(&id[8..], b"AQIDBAUGAAAAAAAF");
        assert_eq!(id[..8], super::event_id_like(0, 7, 8)[..8], "the file's part stays");
        assert_ne!(id[..8], super::event_id_like(1, 0, 5)[..8], "and differs between files");
    }
}
