//! `courier replay`: re-delivers a range of one partition to chosen customers and
//! destinations, through the same routing and delivery code as a worker, without joining the
//! live consumer group and without committing anything.
//!
//! The range is resolved first (`--from-time`/`--to-time` through the broker's time index; the
//! end defaults to the log end at start), then the partition is read with a plain assignment
//! under a throwaway group id. Each message is decoded and routed with the configured
//! customers, restricted to `--customer`/`--destination`; every copy goes to a fresh delivery
//! task of its destination (batching, rate limits, retries, dead letters as configured, but no
//! retry topic: a replay retries inline, so it ends only when each copy was delivered or
//! dead-lettered). Messages that do not decode or whose write key is unknown were dead-lettered
//! when first consumed; a replay counts them as skipped instead of dead-lettering them again.
//!
//! Exit status: 0 only if every copy in range was delivered or dead-lettered.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use courier_connectors::{Event, MessageKey, Registry, SmolStr};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc::unbounded_channel;

use crate::ack::MessageAck;
use crate::customers::Customer;
use crate::deadletter::{DeadLetters, Origin};
use crate::deliver::{EventCopy, Fallback};
use crate::destinations::{self, Instances};
use crate::kafka;
use crate::settings::Settings;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Where a replay starts.
#[derive(Debug, Clone, Copy)]
pub enum From {
    /// This offset.
    Offset(i64),
    /// The first message at or after this time (ms since the epoch).
    Time(i64),
}

/// Where a replay ends.
#[derive(Debug, Clone, Copy)]
pub enum To {
    /// This offset, included.
    Offset(i64),
    /// Before this time (ms since the epoch).
    Time(i64),
    /// The log end when the replay starts.
    End,
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct Request {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The start.
    pub from: From,
    /// The end.
    pub to: To,
    /// Only these customers (all when empty).
    pub customers: Vec<String>,
    /// Only destinations with these names (all when empty).
    pub destinations: Vec<String>,
    /// Count what would be sent, send nothing.
    pub dry_run: bool,
}

/// What a replay did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// The offsets replayed, `first..end` (end excluded).
    pub range: (i64, i64),
    /// Messages read.
    pub read: u64,
    /// Copies sent (or, in a dry run, that would be sent) per `customer/destination`.
    pub sent: BTreeMap<String, u64>,
    /// Copies delivered per `customer/destination`.
    pub delivered: BTreeMap<String, u64>,
    /// Copies dead-lettered per `customer/destination`.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Messages none of the chosen destinations takes (filters, customers not chosen).
    pub skipped_by_filter: u64,
    /// Messages that do not decode or have an unknown write key (dead-lettered when first
    /// consumed).
    pub skipped_invalid: u64,
}

impl Summary {
    /// Whether every copy sent was delivered or dead-lettered.
    pub fn complete(&self) -> bool {
        self.sent.iter().all(|(k, n)| {
            self.delivered.get(k).copied().unwrap_or(0)
                + self.dead_lettered.get(k).copied().unwrap_or(0)
                == *n
        })
    }

    /// The summary as text.
    pub fn text(&self, dry_run: bool) -> String {
        let mut out = format!(
            "replayed offsets {}..{}: {} read, {} skipped by filter, {} skipped as invalid\n",
            self.range.0, self.range.1, self.read, self.skipped_by_filter, self.skipped_invalid
        );
        for (destination, sent) in &self.sent {
            if dry_run {
                out.push_str(&format!("  {destination}: would send {sent}\n"));
            } else {
                out.push_str(&format!(
                    "  {destination}: sent {sent}, delivered {}, dead-lettered {}\n",
                    self.delivered.get(destination).copied().unwrap_or(0),
                    self.dead_lettered.get(destination).copied().unwrap_or(0)
                ));
            }
        }
        out
    }
}

/// Keeps the chosen customers and destinations only; errors when a choice matches nothing.
fn choose(mut customers: Vec<Customer>, request: &Request) -> anyhow::Result<Vec<Customer>> {
    for c in &request.customers {
        anyhow::ensure!(
            customers.iter().any(|k| &k.id == c),
            "no customer {c:?} in the configuration"
        );
    }
    for d in &request.destinations {
        anyhow::ensure!(
            customers.iter().any(|k| {
                (request.customers.is_empty() || request.customers.contains(&k.id))
                    && k.destinations.iter().any(|x| &x.name == d && x.enabled)
            }),
            "no enabled destination {d:?} among the chosen customers"
        );
    }
    customers.retain(|c| request.customers.is_empty() || request.customers.contains(&c.id));
    for c in &mut customers {
        c.destinations
            .retain(|d| request.destinations.is_empty() || request.destinations.contains(&d.name));
    }
    Ok(customers)
}

/// Resolves the range to `[first, end)`.
fn resolve(settings: &Settings, request: &Request) -> anyhow::Result<(i64, i64)> {
    let consumer: rdkafka::consumer::BaseConsumer =
        kafka::observer_config(settings, "courier-cli-lookup")
            .create()
            .context("creating the consumer")?;
    let (low, high) = consumer
        .fetch_watermarks(&request.topic, request.partition, TIMEOUT)
        .with_context(|| format!("reading {}/{}", request.topic, request.partition))?;
    let at_time =
        |ms: i64| crate::offsets::offset_for_time(settings, &request.topic, request.partition, ms);
    let first = match request.from {
        From::Offset(o) => o.max(low),
        From::Time(ms) => at_time(ms)?,
    };
    let end = match request.to {
        To::Offset(o) => (o + 1).min(high),
        To::Time(ms) => at_time(ms)?,
        To::End => high,
    };
    Ok((first, end.max(first)))
}

/// Runs a replay; the summary says whether it completed.
pub async fn run(settings: &Settings, request: &Request) -> anyhow::Result<Summary> {
    let all = crate::control::load_customers(settings).await?;
    let known: std::collections::HashSet<String> = all
        .iter()
        .flat_map(|c| c.write_keys.iter().cloned())
        .collect();
    let customers = choose(all, request)?;
    let mut config = kafka::consumer_config(settings);
    config
        .set("group.id", format!("courier-replay-{}", std::process::id()))
        .set("enable.partition.eof", "true");
    let consumer: StreamConsumer = config.create().context("creating the consumer")?;
    let (first, end) = {
        let (settings, request) = (settings.clone(), request.clone());
        tokio::task::spawn_blocking(move || resolve(&settings, &request)).await??
    };
    let mut summary = Summary {
        range: (first, end),
        ..Summary::default()
    };
    if first >= end {
        return Ok(summary);
    }
    let producer = crate::producer::AckedProducer::new(&kafka::producer_config(settings))
        .context("creating the producer")?;
    let (dead_letters, tally) = match &settings.dead_letter.topic {
        Some(topic) => DeadLetters::new(producer, topic.clone()).tallied(),
        None => DeadLetters::disabled().tallied(),
    };
    let fallback = Fallback {
        dead_letters,
        parking: None,
    };
    let table = destinations::routing_table(
        &customers,
        &Registry::builtin(),
        &destinations::http_client(),
        &fallback,
        &mut Instances::default(),
    )?;
    // One completion channel per destination: a settled copy reports there.
    let mut done = BTreeMap::new();
    for h in table.handles() {
        done.insert(
            format!("{}/{}", h.id.customer, h.id.name),
            unbounded_channel::<i64>(),
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&request.topic, request.partition, Offset::Offset(first))?;
    consumer.assign(&tpl).context("assigning the partition")?;
    let topic = SmolStr::from(request.topic.as_str());
    let progress = Progress::new(end - first);
    loop {
        let message = match consumer.recv().await {
            Ok(m) => m,
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => break,
            Err(err) => return Err(err).context("reading the partition"),
        };
        if message.offset() >= end {
            break;
        }
        summary.read += 1;
        progress.tick(summary.read);
        let payload = bytes::Bytes::copy_from_slice(message.payload().unwrap_or_default());
        let origin = Origin {
            topic: topic.clone(),
            partition: request.partition,
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
            key: message.key().map(MessageKey::from),
        };
        let max_bytes = settings.consumer.max_message_bytes;
        let Ok(event) = Event::parse_at(payload, max_bytes, origin) else {
            summary.skipped_invalid += 1;
            continue;
        };
        let routes = table.customer(event.write_key_bytes()).cloned();
        let Some(route) = routes else {
            // A customer not chosen, or a write key unknown to the configuration.
            if known.contains(event.write_key()) {
                summary.skipped_by_filter += 1;
            } else {
                summary.skipped_invalid += 1;
            }
            continue;
        };
        let event = Arc::new(event);
        let mut taken = false;
        for target in &route.targets {
            if !target.filter.accepts(&event) || !target.handle.destination.accepts(&event) {
                continue;
            }
            taken = true;
            let key = format!("{}/{}", target.handle.id.customer, target.handle.id.name);
            *summary.sent.entry(key.clone()).or_insert(0) += 1;
            if request.dry_run {
                continue;
            }
            let Some((tx, _)) = done.get(&key) else {
                continue;
            };
            let copy = EventCopy {
                event: event.clone(),
                ack: MessageAck::new(message.offset(), tx.clone()),
                retry: None,
            };
            if target.handle.queue.send(copy).await.is_err() {
                anyhow::bail!("the delivery task of {key} stopped");
            }
        }
        if !taken {
            summary.skipped_by_filter += 1;
        }
        if message.offset() + 1 >= end {
            break;
        }
    }
    progress.finish(summary.read);
    // Closing the queues lets each delivery task finish what it holds and stop; a copy's
    // channel reports it when settled, and closes when every copy is gone.
    drop(table);
    for (key, (tx, mut rx)) in done {
        drop(tx);
        let mut settled = 0;
        while rx.recv().await.is_some() {
            settled += 1;
        }
        if settled > 0 {
            summary.delivered.insert(key, settled);
        }
    }
    for (key, n) in tally.counts() {
        if let Some(delivered) = summary.delivered.get_mut(&key) {
            *delivered = delivered.saturating_sub(n);
        }
        summary.dead_lettered.insert(key, n);
    }
    Ok(summary)
}

/// A progress line on a terminal (redrawn), or a plain line every 10 seconds otherwise.
struct Progress {
    total: i64,
    terminal: bool,
    started: Instant,
    last: std::sync::Mutex<Instant>,
}

impl Progress {
    fn new(total: i64) -> Progress {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn tick(&self, read: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        if last.elapsed() < every {
            return;
        }
        *last = Instant::now();
        self.print(read, false);
    }

    fn print(&self, read: u64, done: bool) {
        let total = self.total.max(1) as u64;
        let pct = read * 100 / total;
        let rate = read as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr();
        if self.terminal {
            let filled = (pct / 5) as usize;
            let _ = write!(
                err,
                "\r[{}{}] {read}/{total} {pct:>3}% {rate:.0}/s",
                "#".repeat(filled),
                " ".repeat(20 - filled.min(20))
            );
            if done {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "replay: {read}/{total} read ({pct}%), {rate:.0}/s");
        }
    }

    fn finish(&self, read: u64) {
        self.print(read, true);
    }
}
