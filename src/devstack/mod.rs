//! The local stack for the demo and the tests: a real Kafka-protocol broker, real HTTP
//! receivers, and realistic sample events.
//!
//! - [`broker`]: librdkafka's mock cluster listening on loopback TCP (real consumer groups,
//!   offset commits, fault injection), with topics created up front. It is the one mock in the
//!   stack, because no Kafka broker can be installed on the machines this project is built on;
//!   Courier talks to it through the same librdkafka client it uses in production.
//! - [`receiver`]: an HTTP server that records what destinations receive, verifies webhook
//!   signatures, and answers with a status the test chooses.
//! - [`sample`]: Segment events as analytics.js would send them.
//! - [`contracts`]: servers enforcing the published contracts of Amplitude, Mixpanel, Slack and
//!   Segment, with fault injection.
//! - [`produce`]: producing records and reading topics back.
//! - [`bench`](mod@bench): the benchmark backlog, the raw-consumer ceiling and a counting receiver.
//! - [`s3`]: a real S3 server (`s3s-fs`) on loopback.
//! - [`redshift_front`]: a PostgreSQL wire proxy that runs Redshift's `COPY ... FROM 's3://...'`
//!   against the S3 server, the stand-in for Redshift.

pub mod bench;
pub mod broker;
pub mod contracts;
pub mod produce;
pub mod receiver;
pub mod redshift_front;
pub mod s3;
pub mod sample;
