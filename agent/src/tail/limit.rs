//! Per-input rate limits (`rate_limit`): when an input's files may be read next.
//!
//! Owns each limited input's governor limiters and the *debt* of what was read before it could be
//! charged (a read's size and its event count are only known afterwards). Invariant: an input
//! reads only once its debt is paid, so over any stretch it reads at most its rate times the
//! stretch, plus one burst (`BURST`, 200 ms worth of the rate) and one read, and a read is sized to
//! about one burst. Nothing is dropped: lines wait in their files.

use crate::config::RateLimitConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// The most a limiter lets through at once, as a share of one second's rate.
const BURST: Duration = Duration::from_millis(200);
/// A first read under an events limit, before the input's bytes per event are known.
const FIRST_READ: u64 = 4096;
/// Cells per second at most: governor counts time in whole nanoseconds per cell, so fewer, larger
/// cells keep its rounding under 0.01 %.
const MAX_CELLS_PER_SECOND: u64 = 100_000;

/// One rate (bytes or events) and what was taken from it but not yet paid.
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    /// Bytes or events per cell.
    unit: u64,
    burst: u32,
    debt: u64,
}

impl Bucket {
    fn new(per_second: u64) -> Bucket {
        let unit = per_second.div_ceil(MAX_CELLS_PER_SECOND).max(1);
        let cells = NonZeroU32::new((per_second / unit).clamp(1, u64::from(u32::MAX)) as u32).expect("at least 1");
        let burst = ((u64::from(cells.get()) * BURST.as_millis() as u64) / 1000).max(1) as u32;
        let quota = Quota::per_second(cells).allow_burst(NonZeroU32::new(burst).expect("at least 1"));
        Bucket { limiter: RateLimiter::direct(quota), unit, burst, debt: 0 }
    }

    /// Pays what the limiter allows now; the wait before the rest can be paid, if any is left.
    fn pay(&mut self, clock: &DefaultClock) -> Option<Duration> {
        while self.debt >= self.unit {
            let cells = (self.debt / self.unit).min(u64::from(self.burst)) as u32;
            match self.limiter.check_n(NonZeroU32::new(cells).expect("debt >= unit")) {
                Ok(Ok(())) => self.debt -= u64::from(cells) * self.unit,
                Ok(Err(not_until)) => return Some(not_until.wait_time_from(clock.now())),
                Err(_) => unreachable!("cells are capped at the burst size"),
            }
        }
        None
    }

    /// The burst in bytes or events.
    fn burst_amount(&self) -> u64 {
        u64::from(self.burst) * self.unit
    }
}

/// One input's limits.
pub struct RateLimit {
    bytes: Option<Bucket>,
    events: Option<Bucket>,
    clock: DefaultClock,
    /// No read before this (the debt could not be paid yet).
    not_before: Option<Instant>,
    /// Bytes and events read so far: the average event size turns an events burst into bytes.
    seen_bytes: u64,
    seen_events: u64,
}

impl RateLimit {
    pub fn new(cfg: &RateLimitConfig) -> RateLimit {
        RateLimit {
            bytes: cfg.bytes_per_second.map(|b| Bucket::new(b.0)),
            events: cfg.events_per_second.map(|e| Bucket::new(u64::from(e))),
            clock: DefaultClock::default(),
            not_before: None,
            seen_bytes: 0,
            seen_events: 0,
        }
    }

    /// Most bytes one poll of a file may read, so a read does not run far past the burst: the
    /// bytes burst, and the events burst times the average event size seen so far (a small first
    /// read learns it). Without this, one 1 MiB read under a low events limit would be thousands
    /// of events at once and then a long silence.
    pub fn read_budget(&self, default: usize) -> usize {
        let mut budget = default as u64;
        if let Some(b) = &self.bytes {
            budget = budget.min(b.burst_amount());
        }
        if let Some(e) = &self.events {
            let events_worth = match self.seen_events {
                0 => FIRST_READ,
                n => e.burst_amount().saturating_mul((self.seen_bytes / n).max(1)),
            };
            budget = budget.min(events_worth);
        }
        (budget as usize).clamp(1, default)
    }

    /// Records a read: its bytes and the events made of it.
    pub fn charge(&mut self, bytes: u64, events: u64) {
        self.seen_bytes += bytes;
        self.seen_events += events;
        if let Some(b) = &mut self.bytes {
            b.debt += bytes;
        }
        if let Some(e) = &mut self.events {
            e.debt += events;
        }
    }

    /// Whether the input may read now: its debt is paid. Otherwise [`Self::next_ready`] says when
    /// to ask again.
    pub fn ready(&mut self, now: Instant) -> bool {
        if self.not_before.is_some_and(|t| now < t) {
            return false;
        }
        let wait = [&mut self.bytes, &mut self.events].into_iter().flatten().filter_map(|b| b.pay(&self.clock)).max();
        self.not_before = wait.map(|w| now + w);
        self.not_before.is_none()
    }

    pub fn next_ready(&self) -> Option<Instant> {
        self.not_before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;

    /// Reads as fast as the limit allows for `secs` and returns the bytes read.
    fn read_flat_out(limit: &mut RateLimit, secs: f64, chunk: u64) -> u64 {
        let start = Instant::now();
        let mut read = 0;
        while start.elapsed().as_secs_f64() < secs {
            if limit.ready(Instant::now()) {
                limit.charge(chunk, 1);
                read += chunk;
            } else {
                std::thread::sleep(limit.next_ready().unwrap().saturating_duration_since(Instant::now()));
            }
        }
        read
    }

    #[test]
    fn bytes_limit_is_held() {
        // 1 MiB/s for half a second: at most the rate × time plus one burst and one read.
        let mut l =
            RateLimit::new(&RateLimitConfig { bytes_per_second: Some(ByteSize::mib(1)), events_per_second: None });
        assert_eq!(l.read_budget(1 << 20), 209_715, "200 ms of 1 MiB/s, in whole cells");
        let read = read_flat_out(&mut l, 0.5, 64 * 1024);
        let most = (1 << 19) + 209_715 + 64 * 1024;
        assert!(read <= most, "read {read} > {most}");
        assert!(read >= 1 << 18, "read {read}: the limit must not starve the input");
    }

    #[test]
    fn events_limit_pays_big_debts_in_pieces() {
        let mut l = RateLimit::new(&RateLimitConfig { bytes_per_second: None, events_per_second: Some(100) });
        assert!(l.ready(Instant::now()));
        // One read made 50 events: more than the burst (20), paid over several calls.
        l.charge(1000, 50);
        assert!(!l.ready(Instant::now()));
        let wait = l.next_ready().unwrap().saturating_duration_since(Instant::now());
        assert!(wait <= Duration::from_millis(310), "{wait:?}");
    }

    #[test]
    fn events_limit_bounds_the_bytes_of_a_read() {
        let mut l = RateLimit::new(&RateLimitConfig { bytes_per_second: None, events_per_second: Some(100) });
        assert_eq!(l.read_budget(1 << 20), 4096, "a small first read");
        // 50-byte events: the next read is the burst (20 events) worth, 1000 bytes.
        l.charge(4000, 80);
        assert_eq!(l.read_budget(1 << 20), 1000);
    }
}
