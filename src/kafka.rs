//! librdkafka client configurations.
//!
//! The consumer never stores or commits offsets by itself (`enable.auto.commit=false`,
//! `enable.auto.offset.store=false`): only Courier commits, and only watermarks of done
//! messages. Assignment is cooperative-sticky, so a rebalance moves only the partitions that
//! change owner and the others keep flowing. The dead-letter producer is idempotent with
//! `acks=all`, so an acknowledged dead letter is durable and a retried one is not duplicated.
//! User properties are applied on top; the ones the guarantee depends on are refused by
//! [`Settings::validate`](crate::settings::Settings::validate).

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::settings::Settings;

/// How long one call of a poll thread (the consumer's main queue, the producer's reports) waits.
/// rdkafka converts the time left to whole milliseconds at each wait inside a call, and spins
/// in zero-timeout polls once less than one is left: with exactly 100 ms the first wait is
/// 99 ms and the last millisecond a busy loop. The extra 20 µs make the first wait the whole
/// 100 ms, which ends (librdkafka's timed wait never wakes early) at most 20 µs before the call's
/// deadline, so at most that much is spun.
pub const POLL_WAIT: Duration = Duration::from_micros(100_020);

/// The consumer of the worker's group.
pub fn consumer_config(settings: &Settings) -> ClientConfig {
    let k = &settings.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", &k.group_id)
        .set("client.id", client_id("courier"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Per-partition consumer lag for the metrics and /status.
        .set("statistics.interval.ms", "5000")
        // A fetch that finds nothing waits at most this long: bounds delivery latency on
        // brokers that do not answer a waiting fetch as soon as data arrives (librdkafka's
        // default is 500 ms); costs a few empty fetches per second on an idle partition. A
        // fetch made only of partitions without new data (the others left out while their
        // prefetch queue is full) holds up the next one that long: a backlog with idle
        // partitions beside it drains 13-46% faster at 10 ms, for 10x the idle fetches
        // (bench/RESULTS.md, "Where W1's drain waits" and "What holds W1's drain back").
        // Pausing the partitions at their end instead does not help: librdkafka fetches a
        // partition at its end while its task still works through the prefetched messages, and
        // a pause would drop those.
        .set("fetch.wait.max.ms", "100")
        // Prefetched bytes per partition (librdkafka's default, 64 MiB, lets memory grow with
        // the number of partitions a worker owns): 128 KiB keep the drain rate with the short
        // queue backoff below while 128 partitions prefetch at most 16 MiB (at 512 KiB the
        // route-only benchmark peaked ~70 MB higher at the same rate; bench/RESULTS.md). It also
        // caps a fetch response at 1 MB for all partitions together (librdkafka lowers an unset
        // `fetch.max.bytes` to this bound or `message.max.bytes`); 4-50 MiB responses drained
        // the backlog slower and peaked higher ("What holds W1's drain back").
        .set("queued.max.messages.kbytes", "128")
        // A partition whose prefetch queue is at that bound is looked at again after this
        // long (librdkafka's default, 1000 ms, left partitions idle for most of each second
        // once the task had emptied their queue: a backlog drained at about half the rate).
        .set("fetch.queue.backoff.ms", "10")
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (k.session_timeout_ms / 4).max(100).to_string(),
        );
    apply(&mut c, &k.properties);
    apply(&mut c, &k.consumer_properties);
    c
}

/// The producer of dead letters and parked retries.
pub fn producer_config(settings: &Settings) -> ClientConfig {
    let k = &settings.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("client.id", client_id("courier-dead-letter"))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    apply(&mut c, &k.properties);
    apply(&mut c, &k.producer_properties);
    c
}

/// A consumer of `group` that never joins it: reads committed offsets and watermarks.
pub fn observer_config(settings: &Settings, group: &str) -> ClientConfig {
    let k = &settings.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", group)
        .set("client.id", client_id("courier-cli"))
        .set("enable.auto.commit", "false");
    apply(&mut c, &k.properties);
    c
}

fn apply(c: &mut ClientConfig, props: &std::collections::BTreeMap<String, String>) {
    for (key, value) in props {
        c.set(key, value);
    }
}

fn client_id(prefix: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!("{prefix}-{host}-{}", std::process::id())
}
