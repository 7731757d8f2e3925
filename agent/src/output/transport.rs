//! The seam between the output's mode logic ([`super::Output`]: direct, spooling, replay, drain)
//! and the way to Kafka ([`super::kafka::KafkaOutput`], librdkafka's producers).
//!
//! Owns nothing; it states what the mode logic relies on, so that the mode changes can be tested
//! with a fake transport (`output::tests`) without a broker. Contract every implementation keeps:
//! - a file event handed to [`Transport::send_event`] is registered with the ack tracker in queue
//!   order, and is marked done exactly once: when Kafka acknowledges it, or never by the transport
//!   if it comes back through [`Transport::park_all`] / [`Transport::take_parked`] (the spool
//!   then owns it);
//! - a replayed spool record is in the replay window from [`Transport::send_replay`] until it is
//!   acknowledged; [`Transport::replay_oldest_unacked`] never passes an unacknowledged one;
//! - while parked (from `park_all` until [`Transport::unpark`]) no file event is sent directly
//!   again: whatever comes back is handed out by `take_parked`, in per-file order.

use super::kafka::Parked;
use crate::event::Event;
use crate::shutdown::Shutdown;
use crate::spool::format::Record;
use std::time::Duration;

pub trait Transport {
    /// One turn of the output thread's loop (`/livez`).
    fn beat(&self);
    /// Copies per-batch state (reachable partitions) before a batch is sent.
    fn begin_batch(&mut self);
    /// Registers one event and hands it on; gives it back, still registered, when Kafka counts as
    /// unreachable while there is no room (only with a spool) or the drain deadline passed.
    // The event comes back by value on the rare path (the output gives up and spools it); a box
    // would add an allocation there and save nothing on the common one.
    #[allow(clippy::result_large_err)]
    fn send_event(&mut self, ev: Event, stop: &Shutdown) -> Result<(), Parked>;
    /// Sends one replayed spool record; false when there is no room yet (try again later).
    fn send_replay(&mut self, rec: &Record) -> bool;
    /// The lowest replayed sequence number not yet acknowledged; `None` when none is in flight.
    fn replay_oldest_unacked(&self) -> Option<u64>;
    fn replay_in_flight(&self) -> usize;
    /// Refreshes what it knows of the topics' partitions when that is due.
    fn refresh_topics_if_due(&mut self);
    /// Sends again what failed retriably, once its backoff passed.
    fn send_retries(&mut self, stop: &Shutdown);
    /// Records not yet acknowledged (queued, in flight, waiting for a retry, or held).
    fn outstanding(&self) -> usize;
    /// Records held because Kafka refuses their topic.
    fn held(&self) -> usize;
    /// Kafka counts as unreachable (only ever true with a spool): records are outstanding and
    /// none was acknowledged for `unhealthy_after` × `patience`.
    fn unhealthy(&mut self, patience: u32) -> bool;
    /// The same test with or without a spool (`/healthz`, the `output_stalled` gauge).
    fn stalled(&mut self, patience: u32) -> bool;
    /// Why the brokers refuse the connection (TLS or SASL), when that is why nothing gets through.
    fn connection_refused(&self) -> Option<String>;
    /// Parks: takes every file event back (in per-file order) for the spool, drops the replay
    /// window, and starts asking whether Kafka answers.
    fn park_all(&mut self) -> Vec<Parked>;
    /// File events that came back since the last call (while parked).
    fn take_parked(&self) -> Vec<Parked>;
    /// Whether Kafka answered since parking began.
    fn answered(&self) -> bool;
    /// Replay starts now: a stall is measured from this moment.
    fn restart_stall_clock(&mut self);
    /// Back to sending directly.
    fn unpark(&mut self);
    /// Serves delivery reports for up to `wait`.
    fn flush(&self, wait: Duration);
}
