//! Integration tests: one binary (as ripgrep does), real files on a real file system and a real
//! Kafka-protocol broker (librdkafka's mock cluster in process; tansu as a process for the
//! end-to-end tests that run the `agent` binary).

mod common;
mod connect;
mod e2e;
mod filebeat;
mod inputs;
mod mock;
mod ops;
mod outage;
mod sasl;
mod sink;
mod spool;
mod tls;
