//! glibc malloc settings for the agent's process, applied once at start, before any thread.
//!
//! Owns nothing after [`tune`] returns. Invariant: a setting the user gave through glibc's own
//! environment variables (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_ARENA_MAX`, ...) is left as they set
//! it; with the `jemalloc` feature, or off glibc, this does nothing.
//!
//! Why: the peak resident set of a catch-up run was about three times the peak of live heap
//! (measured with heaptrack: 17 MB live, 54 MB resident). glibc's mmap threshold is dynamic: once
//! a large block served by mmap is freed, blocks up to its size come from the heap arenas from
//! then on. librdkafka's per-request buffers (the message set and its gzip output, 300 KB to 1 MB
//! each, one pair per request) then land in the arenas between small long-lived allocations, and
//! the holes they leave stay resident. A fixed threshold keeps them in mmap, handed back to the
//! kernel on free. It is set above zlib's largest block (its 128 KiB hash head, allocated once per
//! compressed request) so that deflate's state stays in the heap: a 128 KiB threshold would map
//! and fault that in once per request too, which cost about a quarter more CPU per GB.

/// The fixed mmap threshold: blocks at or above this size get their own mapping.
pub const MMAP_THRESHOLD: usize = 256 * 1024;
/// Malloc arenas: the agent's hot threads are the reader, the output, and librdkafka's broker
/// threads. Fewer arenas than glibc's default (8 per core) keep fewer partly-used heaps resident.
pub const ARENA_MAX: usize = 2;

/// What [`tune`] did, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuned {
    /// The fixed threshold and arena count are in force.
    Applied,
    /// The environment already sets glibc's malloc; its settings stand.
    LeftToEnvironment,
    /// Not glibc's malloc (jemalloc feature, or another C library).
    NotGlibc,
    /// glibc refused a setting (`mallopt` returned 0).
    Refused,
}

/// Applies [`MMAP_THRESHOLD`] and [`ARENA_MAX`] unless the environment sets glibc's malloc itself.
/// Call first in `main`, before any thread starts (arenas are created as threads first allocate).
pub fn tune() -> Tuned {
    let env_set = std::env::vars_os().any(|(k, _)| k.to_str().is_some_and(|k| k.starts_with("MALLOC_")));
    if env_set {
        return Tuned::LeftToEnvironment;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
fn apply() -> Tuned {
    // SAFETY: mallopt only changes glibc's allocator parameters; called before other threads.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX as libc::c_int) == 1
    };
    if ok {
        Tuned::Applied
    } else {
        Tuned::Refused
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc"))))]
fn apply() -> Tuned {
    Tuned::NotGlibc
}
