//! The reachability probe: while the output spools, a thread asks Kafka for metadata every
//! `retry_interval` until it answers, so replay starts only once Kafka is back. Owns that thread;
//! it stops and is joined when the probe is dropped.

use super::delivery::AgentContext;
use crate::shutdown::Shutdown;
use rdkafka::producer::{Producer, ThreadedProducer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Checks in the background, while the output is spooling, whether Kafka answers again.
pub(super) struct Probe {
    /// Set while the output spools: the probe asks.
    pub(super) wanted: Arc<AtomicBool>,
    /// Kafka answered since the probe was last reset.
    pub(super) answered: Arc<AtomicBool>,
    /// How often it asks.
    pub(super) every: Duration,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Probe {
    pub(super) fn start(producer: Arc<ThreadedProducer<AgentContext>>, every: Duration) -> Probe {
        let (wanted, answered, stop) = (Arc::default(), Arc::default(), Shutdown::new());
        let thread = std::thread::Builder::new()
            .name("kafka-probe".into())
            .spawn({
                let (wanted, answered, stop) = (Arc::clone(&wanted), Arc::clone(&answered), stop.clone());
                move || probe_loop(&producer, every, &wanted, &answered, &stop)
            })
            .expect("spawn probe thread");
        Probe { wanted, answered, every, stop, thread: Some(thread) }
    }
}

fn probe_loop(
    producer: &ThreadedProducer<AgentContext>,
    every: Duration,
    wanted: &AtomicBool,
    answered: &AtomicBool,
    stop: &Shutdown,
) {
    loop {
        if wanted.load(Ordering::Relaxed) && !answered.load(Ordering::Relaxed) {
            let ok = producer.client().fetch_metadata(None, every.max(Duration::from_secs(1))).is_ok();
            answered.store(ok, Ordering::Relaxed);
        }
        if stop.wait(every) {
            return;
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
