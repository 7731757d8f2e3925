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
//!   bounded by the last registry flush window (`registry.flush`, 1 s by default).
//! - **Atomic registry writes** (temp file, fsync, rename, directory fsync); a corrupt registry
//!   stops start-up with an error naming the file.
//! - **File identity** is device + inode checked against a fingerprint of the first bytes, so
//!   rotation (rename, copytruncate, deletion) and inode reuse are handled; small files are
//!   shipped at once.
//! - **Backpressure, not loss**: a slow Kafka fills the byte-bounded queue and the reader waits;
//!   an unreachable Kafka switches the output to the bounded disk spool (full = the reader waits).
//! - **Bad input is contained**: each kind is logged once per file and counted in [`metrics`].
//!
//! Threads: `discover` (globs + inotify), `reader` (all files, synchronous hot loop over 64 KiB
//! reads), `output` (queue → librdkafka or the spool; spool replay), `kafka-probe` (is Kafka back?),
//! librdkafka's own threads (compression, delivery reports
//! → [`ack`]), `registry` (periodic atomic writes). Modules are listed in data-flow order.

pub mod ack;
pub mod config;
pub mod connect;
pub mod decode;
pub mod discover;
pub mod durable;
pub mod event;
pub mod fingerprint;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod processors;
pub mod queue;
pub mod registry;
pub mod sink;
pub mod spool;
pub mod status;
pub mod tail;
