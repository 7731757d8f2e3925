//! `queue.spool`: the disk spool that keeps events while Kafka is unreachable.
//!
//! Owns the spool's settings and their defaults; `Config::validate` calls [`SpoolConfig::validate`].

use super::units::{ByteSize, HumanDuration};
use super::{invalid, Invalid};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// Most bytes the spool's segment files may hold together.
pub const DEFAULT_SPOOL_MAX_SIZE: ByteSize = ByteSize::mib(1024);
/// Size at which the spool starts a new segment file (acknowledged segments are deleted whole).
pub const DEFAULT_SPOOL_SEGMENT_SIZE: ByteSize = ByteSize::mib(64);
/// With outstanding events and no acknowledgement for this long, Kafka counts as unreachable.
pub const DEFAULT_SPOOL_UNHEALTHY_AFTER: HumanDuration = HumanDuration::from_secs(5);
/// How often a spooling output checks whether Kafka is back (Filebeat's disk queue `retry_interval`).
pub const DEFAULT_SPOOL_RETRY_INTERVAL: HumanDuration = HumanDuration::from_secs(1);
/// Directory under `path.data` used when `queue.spool.path` is not set.
pub const DEFAULT_SPOOL_DIR: &str = "spool";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Directory of the segment files; `<path.data>/spool` when unset.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default = "d_max_size")]
    pub max_size: ByteSize,
    #[serde(default = "d_segment_size")]
    pub segment_size: ByteSize,
    #[serde(default)]
    pub fsync: FsyncPolicy,
    #[serde(default)]
    pub when_full: WhenFull,
    #[serde(default = "d_unhealthy_after")]
    pub unhealthy_after: HumanDuration,
    #[serde(default = "d_retry_interval")]
    pub retry_interval: HumanDuration,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            max_size: d_max_size(),
            segment_size: d_segment_size(),
            fsync: FsyncPolicy::default(),
            when_full: WhenFull::default(),
            unhealthy_after: d_unhealthy_after(),
            retry_interval: d_retry_interval(),
        }
    }
}

fn d_true() -> bool {
    true
}
fn d_max_size() -> ByteSize {
    DEFAULT_SPOOL_MAX_SIZE
}
fn d_segment_size() -> ByteSize {
    DEFAULT_SPOOL_SEGMENT_SIZE
}
fn d_unhealthy_after() -> HumanDuration {
    DEFAULT_SPOOL_UNHEALTHY_AFTER
}
fn d_retry_interval() -> HumanDuration {
    DEFAULT_SPOOL_RETRY_INTERVAL
}

/// When spooled events are fsynced (they count as done for the registry only after that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// After every batch written to the spool (`fsync: batch`).
    #[default]
    Batch,
    /// At most this often (`fsync: 200ms`): fewer syncs, offsets move a little later.
    Every(HumanDuration),
}

impl<'de> Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "batch" {
            return Ok(FsyncPolicy::Batch);
        }
        humantime::parse_duration(s.trim()).map(|d| FsyncPolicy::Every(HumanDuration(d))).map_err(|_| {
            serde::de::Error::custom(format!("invalid fsync policy {s:?}; write `batch` or a duration such as 200ms"))
        })
    }
}

/// What to do with new events when the spool holds `max_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop taking events: the queue fills, reading pauses, nothing is lost.
    #[default]
    Block,
    /// Delete the oldest segment to make room (its events are lost, counted and logged).
    DropOldest,
    /// Drop the new events (lost, counted and logged); the spool keeps the oldest.
    DropNewest,
}

impl SpoolConfig {
    /// The spool directory, resolved against `path.data`.
    pub fn dir(&self, data: &Path) -> PathBuf {
        self.path.clone().unwrap_or_else(|| data.join(DEFAULT_SPOOL_DIR))
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        const MIN_SEGMENT: u64 = 4096;
        if self.segment_size.0 < MIN_SEGMENT {
            return Err(invalid("queue.spool.segment_size", format!("must be at least {MIN_SEGMENT} bytes")));
        }
        if self.max_size.0 < 2 * self.segment_size.0 {
            return Err(invalid(
                "queue.spool.max_size",
                "must be at least twice queue.spool.segment_size (the spool deletes whole segments)",
            ));
        }
        if matches!(self.fsync, FsyncPolicy::Every(d) if d.0.is_zero()) {
            return Err(invalid("queue.spool.fsync", "must be `batch` or a duration greater than 0"));
        }
        if self.unhealthy_after.0.is_zero() {
            return Err(invalid("queue.spool.unhealthy_after", "must be greater than 0"));
        }
        if self.retry_interval.0.is_zero() {
            return Err(invalid("queue.spool.retry_interval", "must be greater than 0"));
        }
        Ok(())
    }
}
