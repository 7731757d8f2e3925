//! Outputs: where events go after the queue. Kafka is the only one for now (the disk spool and
//! the file sink come with their own issues).

pub mod kafka;
pub mod partition;
