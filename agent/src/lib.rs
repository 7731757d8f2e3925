//! A small, fast, crash-safe file shipper: tails globbed log and JSON-lines files and delivers
//! every line to Kafka at least once, remembering per file how far it got.
//!
//! ```text
//! discover ──► tail ──► decode ──► event ──► queue ──► output ──► ack ──► registry
//! (globs,      (one      (encoding, (encode,   (bounded   (kafka:    (per-file   (offsets on disk,
//!  rescan,      file's    multiline, processors) by bytes:  direct ⇄   contiguous  atomic write)
//!  notify)      state;    json,                 backpressure) spool)  watermark)
//!               gzip)     filters)
//! ```
//!
//! Guarantees:
//! - **At-least-once.** A line's offset is done when Kafka acknowledged it (per `required_acks`)
//!   or when the disk spool fsynced it (while Kafka is unreachable, see [`output`] and [`spool`]).
//!   The registry advances per file only to the highest contiguous done offset. After a clean stop
//!   nothing is lost and nothing is sent twice; after `kill -9` nothing is lost and duplicates are
//!   bounded by how far the registry's journal is behind (`registry.progress_every`, 100 ms).
//! - **Atomic registry writes** (temp file, fsync, rename, directory fsync); a corrupt registry
//!   stops start-up with an error naming the file.
//! - **File identity** is device + inode checked against a fingerprint of the first bytes, so
//!   rotation (rename, copytruncate, deletion) and inode reuse are handled; small files are
//!   shipped at once.
//! - **Backpressure, not loss**: a slow Kafka fills the byte-bounded queue and the reader waits;
//!   an unreachable Kafka switches the output to the bounded disk spool (full = the reader waits).
//! - **Bad input is contained**: each kind is logged once per file and counted in [`metrics`].
//!
//! Stopping: one [`shutdown::Shutdown`] per side that its stages wait on (see there).
//!
//! Threads: `discover` (globs + inotify), `reader` (all files, synchronous hot loop over 64 KiB
//! reads), `output` (queue → librdkafka or the spool; spool replay), `kafka-probe` (is Kafka back?),
//! librdkafka's own threads (compression, delivery reports
//! → [`ack`]), `registry` (periodic atomic writes). Modules are listed in data-flow order.

// Configuration.
pub mod config;

// Reading: which files, their identity, reading them, decoding lines, making events.
pub mod discover;
pub mod fingerprint;

pub mod tail;

pub mod decode;

pub mod event;

pub mod processors;

// Shipping: the bounded queue, the Kafka output (and librdkafka's log), the disk spool.
pub mod queue;

pub mod output;

pub mod rdlog;

pub mod tls_check;

pub mod tls_versions;

pub mod spool;

// Remembering: acknowledgements, the registry, atomic small-file writes.
pub mod ack;

pub mod registry;

pub mod durable;

// Telling: counters, connector status, the HTTP endpoint, the agent's own log files.
pub mod metrics;
/// The process's own figures (`process_*` metrics).
pub mod process;

pub mod status;

pub mod http;

pub mod logging;

// The other direction (topics to files), Kafka Connect's files, and the wiring of it all.
pub mod sink;

pub mod connect;

pub mod shutdown;

pub mod pipeline;
