//! The stop signal: one [`Shutdown`] per running thing (the process, each side of the pipeline,
//! the probe) that every stage of it waits on together with its work, and the drain deadline
//! that comes with the stop.
//!
//! Owns whether a stop was asked for, by when the drain must end, and whom to wake. Invariants:
//! once stopped it stays stopped; the deadline is set once, by the stop that asked for it; a
//! stage that waits in [`Shutdown::wait`] wakes at the stop, not at its next turn, and a stage
//! that waits on a channel of its own is woken by the hook it gave [`Shutdown::on_stop`]. So no
//! stage polls a flag in a sleep loop and no thread exists only to watch the clock: the drain's
//! end is read from the deadline ([`Shutdown::drain_over`]) by the stage that drains.
//!
//! Stages that must end in order do not share one signal: the side's stop ends reading, and the
//! registry ends when the output has finished (its channel's sender is dropped), as in
//! mini-redis's "drop to finish".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A cloneable stop signal with an optional drain deadline.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Set once, under `hooks`' lock (so a waiter checking it under that lock cannot miss the
    /// wake-up); read without the lock by the reader's hot loop.
    stopped: AtomicBool,
    /// Called once at the stop: wakes stages that wait on a channel of their own. Its lock is
    /// the one [`Shutdown::wait`] waits with.
    hooks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    changed: Condvar,
    /// The drain deadline, set at most once (by [`Shutdown::stop_within`]).
    deadline: OnceLock<Instant>,
}

impl Shutdown {
    /// A signal not yet stopped.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A signal already stopped (a run that starts and stops at once, e.g. to check start-up).
    pub fn stopped() -> Shutdown {
        let s = Shutdown::new();
        s.stop();
        s
    }

    /// Stops with no deadline for a drain.
    pub fn stop(&self) {
        let hooks = {
            let mut hooks = self.0.hooks.lock().unwrap();
            self.0.stopped.store(true, Ordering::Release);
            std::mem::take(&mut *hooks)
        };
        self.0.changed.notify_all();
        // Outside the lock: a hook may send on a channel whose receiver checks this signal.
        for hook in hooks {
            hook();
        }
    }

    /// Stops, and whatever drains after the stop must be done within `timeout` from now.
    pub fn stop_within(&self, timeout: Duration) {
        let _ = self.0.deadline.set(Instant::now() + timeout);
        self.stop();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` or until the stop, whichever comes first; returns whether stopped.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.0.hooks.lock().unwrap();
        let _guard = self.0.changed.wait_timeout_while(guard, timeout, |_| !self.is_stopped()).unwrap();
        self.is_stopped()
    }

    /// The drain deadline, once a stop set one.
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline.get().copied()
    }

    /// Whether the drain must end now: stopped, and its deadline (if any) has passed. A stop
    /// without a deadline ends the drain at once.
    pub fn drain_over(&self) -> bool {
        self.is_stopped() && self.deadline().map_or(true, |d| Instant::now() >= d)
    }

    /// Runs `hook` once at the stop (at once when already stopped): for a stage that waits on a
    /// channel, so the stop wakes it through that channel.
    pub fn on_stop(&self, hook: impl FnOnce() + Send + 'static) {
        let mut hooks = self.0.hooks.lock().unwrap();
        if self.is_stopped() {
            drop(hooks);
            hook();
        } else {
            hooks.push(Box::new(hook));
        }
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").field("stopped", &self.is_stopped()).field("deadline", &self.deadline()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_wait_ends_at_the_stop_not_at_its_timeout() {
        let s = Shutdown::new();
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                (s.wait(Duration::from_secs(30)), t.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        s.stop();
        let (stopped, took) = waiter.join().unwrap();
        assert!(stopped);
        assert!(took < Duration::from_secs(10), "woke after {took:?}");
        assert!(s.wait(Duration::from_secs(30)), "a stopped signal does not wait");
    }

    #[test]
    fn a_wait_without_a_stop_times_out_and_says_so() {
        let s = Shutdown::new();
        assert!(!s.wait(Duration::from_millis(10)));
        assert!(!s.is_stopped());
        assert!(!s.drain_over(), "no drain ends before a stop");
    }

    #[test]
    fn the_drain_lasts_until_the_deadline_and_a_plain_stop_ends_it_at_once() {
        let s = Shutdown::new();
        s.stop_within(Duration::from_millis(100));
        assert!(s.is_stopped());
        assert!(!s.drain_over(), "the deadline is ahead");
        std::thread::sleep(Duration::from_millis(120));
        assert!(s.drain_over());
        let plain = Shutdown::new();
        plain.stop();
        assert!(plain.deadline().is_none());
        assert!(plain.drain_over());
    }

    #[test]
    fn the_first_deadline_stays() {
        let s = Shutdown::new();
        s.stop_within(Duration::from_secs(60));
        let first = s.deadline().unwrap();
        s.stop_within(Duration::ZERO);
        assert_eq!(s.deadline(), Some(first));
    }

    #[test]
    fn hooks_run_once_at_the_stop_or_at_once_when_already_stopped() {
        let s = Shutdown::new();
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        s.on_stop(move || t.send("before").unwrap());
        assert!(rx.try_recv().is_err(), "not before the stop");
        s.stop();
        s.stop();
        assert_eq!(rx.try_recv(), Ok("before"));
        assert!(rx.try_recv().is_err(), "a second stop runs no hook again");
        s.on_stop(move || tx.send("after").unwrap());
        assert_eq!(rx.try_recv(), Ok("after"));
    }
}
