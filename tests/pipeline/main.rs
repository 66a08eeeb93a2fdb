//! End-to-end tests: real worker processes against a real Kafka-protocol broker (librdkafka's
//! mock cluster on loopback) and real HTTP receivers. Each test gets its own broker, topics,
//! group, receiver and configuration directory, so tests run in parallel.

// The harness is private to this test binary: its items need no docs or narrower visibility.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

mod archive;
mod backpressure;
mod bad_input;
mod commit;
mod config_cli;
mod connectors;
mod crash;
mod isolation;
mod operate;
mod outage;
mod rebalance;
mod routing;
mod support;
mod tcp_proxy;
mod warehouse;
mod warehouse_fronts;
