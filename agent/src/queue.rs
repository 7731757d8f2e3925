//! The queue between the reader and the output: batches of encoded events, bounded by bytes and
//! optionally by events (Filebeat's `queue.mem.events`).
//!
//! Invariant: the bytes and events held never exceed `max_bytes` and `max_events` (except for
//! one batch larger than the whole budget, admitted alone so it cannot wedge the pipeline). A full queue blocks the reader, so a
//! slow Kafka slows reading instead of growing memory: the files on disk are the first buffer.

use crate::event::Event;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub bytes: usize,
}

impl Batch {
    pub fn push(&mut self, e: Event) {
        self.bytes += e.size();
        self.events.push(e);
    }
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// What [`Queue::pop`] found.
#[derive(Debug)]
pub enum Popped {
    Batch(Batch),
    /// Nothing within the timeout.
    Empty,
    /// Closed and fully drained.
    Closed,
}

#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    max_bytes: usize,
    max_events: usize,
}

#[derive(Debug, Default)]
struct State {
    batches: VecDeque<Batch>,
    bytes: usize,
    events: usize,
    closed: bool,
}

impl Queue {
    pub fn new(max_bytes: usize, max_events: usize) -> Queue {
        Queue { state: Mutex::default(), not_empty: Condvar::new(), not_full: Condvar::new(), max_bytes, max_events }
    }

    /// Waits for room, then enqueues. Returns the batch back if the queue was closed meanwhile, or
    /// if `give_up` says to stop waiting (checked every 100 ms).
    pub fn push(&self, batch: Batch, give_up: impl Fn() -> bool) -> Result<(), Batch> {
        let mut st = self.state.lock().unwrap();
        let n = batch.events.len();
        let full =
            |st: &State| st.bytes + batch.bytes > self.max_bytes || st.events.saturating_add(n) > self.max_events;
        while !st.closed && !st.batches.is_empty() && full(&st) {
            if give_up() {
                return Err(batch);
            }
            st = self.not_full.wait_timeout(st, Duration::from_millis(100)).unwrap().0;
        }
        if st.closed {
            return Err(batch);
        }
        st.bytes += batch.bytes;
        st.events += n;
        st.batches.push_back(batch);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Takes the oldest batch, waiting up to `timeout`.
    pub fn pop(&self, timeout: Duration) -> Popped {
        let mut st = self.state.lock().unwrap();
        if st.batches.is_empty() && !st.closed {
            st = self.not_empty.wait_timeout(st, timeout).unwrap().0;
        }
        match st.batches.pop_front() {
            Some(b) => {
                st.bytes -= b.bytes;
                st.events -= b.events.len();
                self.not_full.notify_all();
                Popped::Batch(b)
            }
            None if st.closed => Popped::Closed,
            None => Popped::Empty,
        }
    }

    /// No more pushes; pops drain what is left.
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    pub fn bytes(&self) -> usize {
        self.state.lock().unwrap().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn batch(n: usize) -> Batch {
        let mut b = Batch::default();
        b.push(Event {
            slot: 0,
            end_offset: 0,
            topic: "t".into(),
            key: None,
            partition_hash: None,
            payload: vec![0; n],
            deliver: true,
            read_at: std::time::Instant::now(),
            id: None,
            timestamp: None,
        });
        b
    }

    #[test]
    fn full_queue_blocks_the_producer_until_popped() {
        let q = Arc::new(Queue::new(1000, usize::MAX));
        q.push(batch(800), || false).unwrap();
        let q2 = q.clone();
        let h = std::thread::spawn(move || q2.push(batch(800), || false).is_ok());
        std::thread::sleep(Duration::from_millis(150));
        assert!(!h.is_finished(), "second batch must wait for room");
        assert!(matches!(q.pop(Duration::ZERO), Popped::Batch(_)));
        assert!(h.join().unwrap());
        assert!(q.bytes() <= 1000);
    }

    #[test]
    fn an_event_bound_blocks_like_the_byte_bound() {
        let q = Arc::new(Queue::new(1 << 20, 2));
        q.push(batch(10), || false).unwrap();
        q.push(batch(10), || false).unwrap();
        let q2 = q.clone();
        let h = std::thread::spawn(move || q2.push(batch(10), || false).is_ok());
        std::thread::sleep(Duration::from_millis(150));
        assert!(!h.is_finished(), "a third event must wait for room");
        assert!(matches!(q.pop(Duration::ZERO), Popped::Batch(_)));
        assert!(h.join().unwrap());
    }

    #[test]
    fn close_drains_then_ends() {
        let q = Queue::new(10_000, usize::MAX);
        q.push(batch(10), || false).unwrap();
        q.close();
        assert!(q.push(batch(10), || false).is_err());
        assert!(matches!(q.pop(Duration::ZERO), Popped::Batch(_)));
        assert!(matches!(q.pop(Duration::ZERO), Popped::Closed));
    }

    #[test]
    fn give_up_returns_the_batch() {
        let q = Queue::new(100, usize::MAX);
        q.push(batch(90), || false).unwrap();
        assert!(q.push(batch(90), || true).is_err());
    }
}
