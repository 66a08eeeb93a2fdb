//! Worker settings: layered, validated, printable.
//!
//! Layers, later wins: the defaults written on the fields below, the TOML file given by
//! `--config`, then `COURIER__SECTION__KEY` environment variables (for example
//! `COURIER__KAFKA__BROKERS=broker-1:9092`; `COURIER__KAFKA__TOPICS=a,b` for lists).
//!
//! [`Settings::load`] parses; [`Settings::validate`] checks every cross-field rule before any
//! I/O (the drain timeout must end before the group gives up on this member, so a draining
//! worker still owns its partitions when it commits). A relative `customers_dir` is resolved
//! against the directory of the configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use courier_connectors::{ApiLimits, BatchLimits};
use serde::{Deserialize, Serialize, Serializer};

/// Everything a worker needs, after layering.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Kafka cluster, group and topics.
    pub kafka: KafkaSettings,
    /// Per-partition consumption limits and timings.
    #[serde(default)]
    pub consumer: ConsumerSettings,
    /// Delivery defaults for every destination (each destination may override them).
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Where undeliverable messages go.
    #[serde(default)]
    pub dead_letter: DeadLetterSettings,
    /// Non-blocking retries through a retry topic.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Directory of customer files (`*.toml`, one customer each).
    pub customers_dir: PathBuf,
    /// Logging.
    #[serde(default)]
    pub log: LogSettings,
    /// The operations HTTP server (health, readiness, metrics, status).
    #[serde(default)]
    pub server: ServerSettings,
    /// Where customers' destinations are configured, and how fast changes apply.
    #[serde(default)]
    pub control: ControlSettings,
    /// The async runtime the worker runs on.
    #[serde(default)]
    pub runtime: RuntimeSettings,
}

/// The async runtime: how many threads run the partition and destination tasks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Threads of the task runtime; 0 (the default) is one per CPU the process may use
    /// (cgroup quotas included). Set it to the CPUs the worker is given where the scheduler
    /// only weighs CPU shares (Marathon on Mesos without CFS quotas): the process would
    /// otherwise start a thread per core of the host. One thread keeps every message on the
    /// thread that consumed it: the route-only benchmark used ~22% less CPU per event than
    /// with two threads on two cores, the webhook benchmark drained ~12% slower
    /// (bench/RESULTS.md).
    pub worker_threads: usize,
}

impl RuntimeSettings {
    /// The number of runtime threads to start.
    pub fn threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// The operations HTTP server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on; the port is replaced by `$PORT0` when set (Marathon).
    pub listen: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "0.0.0.0:9464".into(),
        }
    }
}

/// Where the customers' destinations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One TOML file per customer in `customers_dir`.
    Files,
    /// The `courier_customers` and `courier_destinations` tables of a PostgreSQL database,
    /// followed with LISTEN/NOTIFY.
    Postgres,
}

/// Live configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSettings {
    /// Which store holds the customers.
    pub store: StoreKind,
    /// The PostgreSQL store's connection URL (with `store = "postgres"`).
    #[serde(serialize_with = "redact_option")]
    pub postgres_url: Option<String>,
    /// How often the store is checked for changes (files: modification times; PostgreSQL: a
    /// fallback to notifications).
    pub reload_interval_ms: u64,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            store: StoreKind::Files,
            postgres_url: None,
            reload_interval_ms: 1_000,
        }
    }
}

fn redact_option<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// The Kafka cluster, group and topics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// The consumer group every worker of the fleet joins.
    pub group_id: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Session timeout: a member silent this long is removed from the group.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// librdkafka properties for both the consumer and the producer (security, tuning).
    #[serde(default, serialize_with = "redact_sensitive")]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only.
    #[serde(default, serialize_with = "redact_sensitive")]
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the dead-letter producer only.
    #[serde(default, serialize_with = "redact_sensitive")]
    pub producer_properties: BTreeMap<String, String>,
}

/// Per-partition consumption limits and timings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerSettings {
    /// Consumed but not yet done messages per partition; at the bound the partition pauses.
    pub max_in_flight_per_partition: usize,
    /// Bytes (payload and key, counted exactly) of consumed but not yet done messages across
    /// all partitions of a consumer (the main topics' and, separately, the retry topic's); at
    /// the bound partitions wait until messages are done, and pause after a while. Bounds
    /// memory however many partitions a worker owns. Default 16 MiB: with it 100 customers
    /// with four destinations each peak under 150 MB in the benchmark (the structures around
    /// the bytes, four copies of each event among them, take several times as much).
    pub max_in_flight_bytes: usize,
    /// How often the worker commits its partitions' watermarks while running, all in one
    /// request (partitions that have caught up are also committed soon after, in requests a
    /// tenth of this apart at least, at most 100 ms).
    pub commit_interval_ms: u64,
    /// On revoke or shutdown, how long in-flight deliveries may finish before the final commit.
    pub drain_timeout_ms: u64,
    /// Larger messages are dead-lettered as too large.
    pub max_message_bytes: usize,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            max_in_flight_per_partition: 20_000,
            max_in_flight_bytes: 16 * 1024 * 1024,
            commit_interval_ms: 1_000,
            drain_timeout_ms: 5_000,
            max_message_bytes: 512 * 1024,
        }
    }
}

/// Delivery defaults; a destination's `[delivery]` table overrides any of them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Events per batch at most.
    pub batch_max_events: usize,
    /// Bytes of event JSON per batch at most.
    pub batch_max_bytes: usize,
    /// A batch leaves when its oldest event has waited this long.
    pub batch_max_age_ms: u64,
    /// Batches in flight per destination instance at most.
    pub concurrency: usize,
    /// Events queued per destination instance before partitions wait for it.
    pub queue_capacity: usize,
    /// First retry delay ceiling; doubles each attempt (full jitter).
    pub retry_initial_backoff_ms: u64,
    /// Retry delay ceiling.
    pub retry_max_backoff_ms: u64,
    /// Requests per second at most (unset: the connector's documented default, if any).
    pub requests_per_second: Option<f64>,
    /// Events per second at most (unset: the connector's documented default, if any).
    pub events_per_second: Option<f64>,
    /// Consecutive retryable failures that open the circuit breaker.
    pub circuit_failure_threshold: u32,
    /// How long an open circuit sends nothing before one probe request.
    pub circuit_cooldown_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            batch_max_events: 500,
            batch_max_bytes: 1024 * 1024,
            batch_max_age_ms: 500,
            concurrency: 4,
            queue_capacity: 10_000,
            retry_initial_backoff_ms: 200,
            retry_max_backoff_ms: 60_000,
            requests_per_second: None,
            events_per_second: None,
            circuit_failure_threshold: 5,
            circuit_cooldown_ms: 30_000,
        }
    }
}

impl DeliverySettings {
    /// The batch limits these settings describe.
    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: self.batch_max_events,
            max_bytes: self.batch_max_bytes,
            max_age: Duration::from_millis(self.batch_max_age_ms),
        }
    }

    /// These settings within a destination API's published limits: batches no larger and no
    /// more at once than it takes, and its documented rates where none is configured.
    pub fn within(mut self, limits: ApiLimits) -> DeliverySettings {
        if let Some(max) = limits.max_batch_events {
            self.batch_max_events = self.batch_max_events.min(max);
        }
        if let Some(max) = limits.max_batch_bytes {
            self.batch_max_bytes = self.batch_max_bytes.min(max);
        }
        if let Some(max) = limits.max_concurrency {
            self.concurrency = self.concurrency.min(max);
        }
        if let Some(max) = limits.max_batch_age_ms {
            self.batch_max_age_ms = self.batch_max_age_ms.min(max);
        }
        self.requests_per_second = self.requests_per_second.or(limits.requests_per_second);
        self.events_per_second = self.events_per_second.or(limits.events_per_second);
        self
    }

    /// Checks the limits; `at` names where they were set, for the message.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        let positive = [
            ("batch_max_events", self.batch_max_events as u64),
            ("batch_max_bytes", self.batch_max_bytes as u64),
            ("batch_max_age_ms", self.batch_max_age_ms),
            ("concurrency", self.concurrency as u64),
            ("queue_capacity", self.queue_capacity as u64),
            ("retry_initial_backoff_ms", self.retry_initial_backoff_ms),
            (
                "circuit_failure_threshold",
                u64::from(self.circuit_failure_threshold),
            ),
            ("circuit_cooldown_ms", self.circuit_cooldown_ms),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(format!("{at}.{field} must be above 0"));
            }
        }
        for (field, rate) in [
            ("requests_per_second", self.requests_per_second),
            ("events_per_second", self.events_per_second),
        ] {
            if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                return Err(format!("{at}.{field} must be a positive number"));
            }
        }
        if self.retry_max_backoff_ms < self.retry_initial_backoff_ms {
            return Err(format!(
                "{at}.retry_max_backoff_ms ({}) must be at least retry_initial_backoff_ms ({})",
                self.retry_max_backoff_ms, self.retry_initial_backoff_ms
            ));
        }
        Ok(())
    }
}

/// Where undeliverable messages go.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSettings {
    /// The dead-letter topic. Unset: a message that cannot be delivered holds its partition's
    /// committed offset (and is logged at error level) instead of being dropped.
    pub topic: Option<String>,
}

/// Non-blocking retries: events a destination keeps failing are parked on a retry topic
/// instead of holding their partition.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// The retry topic. Unset: events are retried inline for as long as it takes.
    pub topic: Option<String>,
    /// The retry consumer's group (default: the main group id with `-retry`).
    pub group_id: Option<String>,
    /// How long a batch is retried inline before its events are parked.
    pub inline_budget_ms: u64,
    /// The first delay before a parked event is tried again; doubles per attempt.
    pub initial_delay_ms: u64,
    /// The longest delay between tries of a parked event.
    pub max_delay_ms: u64,
    /// A parked event still failing this long after its first failure is dead-lettered.
    pub max_age_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            topic: None,
            group_id: None,
            inline_budget_ms: 120_000,
            initial_delay_ms: 30_000,
            max_delay_ms: 3_600_000,
            max_age_ms: 86_400_000,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `json`, `text`, or `auto` (text on a terminal, JSON otherwise).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `courier=debug,rdkafka=warn`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

fn default_session_timeout_ms() -> u64 {
    10_000
}

/// Properties whose values are credentials by name.
fn is_sensitive(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|word| key.contains(word))
        && !key.ends_with(".location")
}

fn redact_sensitive<S: Serializer>(
    map: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let redacted: BTreeMap<&str, &str> = map
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                if is_sensitive(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                },
            )
        })
        .collect();
    redacted.serialize(s)
}

/// Properties Courier sets itself because the delivery guarantee depends on them.
pub const RESERVED_PROPERTIES: [&str; 4] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "bootstrap.servers",
];

/// Settings that failed to load or validate; the message names the file and field.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file or environment could not be read or parsed.
    #[error("{path}: {message}")]
    Load {
        /// The configuration file.
        path: PathBuf,
        /// What went wrong, with the field when known.
        message: String,
    },
    /// A rule across fields does not hold.
    #[error("{path}: {message}")]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// The rule that failed, naming the fields.
        message: String,
    },
}

impl Settings {
    /// Loads the file at `path`, then the `COURIER__` environment variables of `env` (the
    /// process environment when `None`), and validates the result.
    pub fn load(
        path: &Path,
        env: Option<config::Map<String, String>>,
    ) -> Result<Settings, SettingsError> {
        let load_error = |message: String| SettingsError::Load {
            path: path.to_owned(),
            message,
        };
        if !path.is_file() {
            return Err(load_error("configuration file not found".into()));
        }
        let environment = config::Environment::with_prefix("COURIER")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("kafka.topics")
            .try_parsing(true)
            .source(env);
        let layered = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(environment)
            .build()
            .map_err(|e| load_error(e.to_string()))?;
        let mut settings: Settings = serde_path_to_error::deserialize(layered)
            .map_err(|e| load_error(format!("{}: {}", e.path(), e.inner())))?;
        if let Ok(port) = std::env::var("PORT0") {
            let host = settings
                .server
                .listen
                .rsplit_once(':')
                .map_or("0.0.0.0", |(host, _)| host);
            settings.server.listen = format!("{host}:{port}");
        }
        if settings.customers_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            settings.customers_dir = base.join(&settings.customers_dir);
        }
        settings
            .validate()
            .map_err(|message| SettingsError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        Ok(settings)
    }

    /// Checks the rules that span fields.
    pub fn validate(&self) -> Result<(), String> {
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err("kafka.brokers is empty".into());
        }
        if k.group_id.trim().is_empty() {
            return Err("kafka.group_id is empty".into());
        }
        if k.topics.is_empty() || k.topics.iter().any(|t| t.trim().is_empty()) {
            return Err("kafka.topics must list at least one non-empty topic".into());
        }
        for (section, props) in [
            ("properties", &k.properties),
            ("consumer_properties", &k.consumer_properties),
            ("producer_properties", &k.producer_properties),
        ] {
            if let Some(key) = props
                .keys()
                .find(|key| RESERVED_PROPERTIES.contains(&key.as_str()))
            {
                return Err(format!(
                    "kafka.{section}.{key:?} is set by courier itself (offsets are committed only after delivery); remove it"
                ));
            }
        }
        if self.control.store == StoreKind::Postgres && self.control.postgres_url.is_none() {
            return Err("control.store = \"postgres\" needs control.postgres_url".into());
        }
        if self.control.reload_interval_ms == 0 {
            return Err("control.reload_interval_ms must be above 0".into());
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "server.listen {:?} is not an address such as 0.0.0.0:9464",
                self.server.listen
            ));
        }
        let c = &self.consumer;
        if c.max_in_flight_per_partition == 0 {
            return Err("consumer.max_in_flight_per_partition must be above 0".into());
        }
        if c.max_in_flight_bytes < c.max_message_bytes {
            return Err(format!(
                "consumer.max_in_flight_bytes ({}) must be at least consumer.max_message_bytes ({})",
                c.max_in_flight_bytes, c.max_message_bytes
            ));
        }
        if c.commit_interval_ms == 0 || c.max_message_bytes == 0 {
            return Err(
                "consumer.commit_interval_ms and consumer.max_message_bytes must be above 0".into(),
            );
        }
        if c.drain_timeout_ms >= k.session_timeout_ms {
            return Err(format!(
                "consumer.drain_timeout_ms ({}) must be below kafka.session_timeout_ms ({}) so a draining worker still owns its partitions when it commits",
                c.drain_timeout_ms, k.session_timeout_ms
            ));
        }
        if let Some(poll) = k
            .consumer_properties
            .get("max.poll.interval.ms")
            .or(k.properties.get("max.poll.interval.ms"))
        {
            let poll: u64 = poll
                .parse()
                .map_err(|_| format!("max.poll.interval.ms {poll:?} is not a number"))?;
            if c.drain_timeout_ms >= poll {
                return Err(format!(
                    "consumer.drain_timeout_ms ({}) must be below max.poll.interval.ms ({poll})",
                    c.drain_timeout_ms
                ));
            }
        }
        if self
            .dead_letter
            .topic
            .as_deref()
            .is_some_and(|t| k.topics.iter().any(|s| s == t))
        {
            return Err("dead_letter.topic must not be one of kafka.topics".into());
        }
        self.delivery.validate("delivery")
    }

    /// The retry consumer's group id.
    pub fn retry_group_id(&self) -> String {
        self.retry
            .group_id
            .clone()
            .unwrap_or_else(|| format!("{}-retry", self.kafka.group_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("courier.toml");
        std::fs::write(&path, body).unwrap();
        path
    }

    const BASE: &str = r#"
customers_dir = "customers"
[kafka]
brokers = "127.0.0.1:9092"
group_id = "courier"
topics = ["events"]
"#;

    #[test]
    fn layers_defaults_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), BASE);
        let env = config::Map::from([
            (
                "COURIER__KAFKA__BROKERS".to_string(),
                "b1:9092,b2:9092".to_string(),
            ),
            (
                "COURIER__DELIVERY__CONCURRENCY".to_string(),
                "9".to_string(),
            ),
            ("COURIER__KAFKA__TOPICS".to_string(), "a,b".to_string()),
        ]);
        let s = Settings::load(&path, Some(env)).unwrap();
        assert_eq!(s.kafka.brokers, "b1:9092,b2:9092");
        assert_eq!(s.kafka.topics, ["a", "b"]);
        assert_eq!(s.delivery.concurrency, 9);
        assert_eq!(s.delivery.batch_max_events, 500);
        assert_eq!(s.customers_dir, dir.path().join("customers"));
        assert_eq!(s.runtime.worker_threads, 0, "unset: one thread per CPU");
        assert!(s.runtime.threads() >= 1);
    }

    #[test]
    fn the_runtime_threads_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), BASE);
        let env = config::Map::from([(
            "COURIER__RUNTIME__WORKER_THREADS".to_string(),
            "3".to_string(),
        )]);
        let s = Settings::load(&path, Some(env)).unwrap();
        assert_eq!((s.runtime.worker_threads, s.runtime.threads()), (3, 3));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!("{BASE}\n[consumer]\ndrain_timeout_ms = 20000\n"),
        );
        let err = Settings::load(&path, Some(config::Map::new()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("courier.toml") && err.contains("consumer.drain_timeout_ms"),
            "{err}"
        );

        let path = write(dir.path(), &format!("{BASE}\n[delivery]\nconcurency = 3\n"));
        let err = Settings::load(&path, Some(config::Map::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("concurency"), "{err}");

        let path = write(
            dir.path(),
            &format!("{BASE}\n[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n"),
        );
        let err = Settings::load(&path, Some(config::Map::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("enable.auto.commit"), "{err}");
    }

    #[test]
    fn sensitive_properties_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &format!("{BASE}\n[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n\"fetch.max.bytes\" = \"1000\"\n"));
        let s = Settings::load(&path, Some(config::Map::new())).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("hunter2") && text.contains("1000"), "{text}");
    }

    #[test]
    fn published_limits_clamp_delivery_settings_and_fill_rates() {
        let settings = DeliverySettings {
            batch_max_events: 500,
            batch_max_age_ms: 500,
            concurrency: 4,
            ..DeliverySettings::default()
        };
        let limits = ApiLimits {
            max_batch_events: Some(100),
            max_concurrency: Some(1),
            max_batch_age_ms: Some(1),
            requests_per_second: Some(2.0),
            ..ApiLimits::NONE
        };
        let within = settings.within(limits);
        assert_eq!(within.batch_max_events, 100);
        assert_eq!(within.concurrency, 1);
        assert_eq!(within.batch_max_age_ms, 1);
        assert_eq!(within.requests_per_second, Some(2.0));
        assert_eq!(within.batch_max_bytes, settings.batch_max_bytes);
        // Settings already under the limits stay as they are.
        let tight = DeliverySettings {
            batch_max_events: 10,
            ..settings
        };
        assert_eq!(tight.within(limits).batch_max_events, 10);
        // A blackhole holds nothing back, whatever the configured age.
        let registry = courier_connectors::Registry::builtin();
        assert_eq!(
            settings
                .within(registry.limits("blackhole"))
                .batch_max_age_ms,
            1
        );
        assert_eq!(
            settings.within(registry.limits("webhook")).batch_max_age_ms,
            500
        );
    }
}
