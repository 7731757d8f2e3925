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
/// the same librdkafka settings as the agent; nothing else (no offsets, no events).
pub fn ceiling(
    bootstrap: &str,
    topic: &str,
    spec: &crate::targets::Settings,
    files: &[std::path::PathBuf],
) -> anyhow::Result<u64> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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
    for path in files {
        let mut r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let partition = (sent % spec.partitions.max(1) as u64) as i32;
            let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(&line[..]).partition(partition);
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
