//! The test harness: `Stack::start` brings up a broker, a receiver and a configuration;
//! `Stack::worker` starts a `courier run` process against them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use courier::devstack::broker::LocalBroker;
use courier::devstack::produce::{self, Record};
use courier::devstack::receiver::Receiver;
use courier::devstack::sample;
use courier::offsets;
pub use courier::offsets::PartitionOffsets;
use courier::settings::Settings;

pub const TOPIC: &str = "events";
pub const DEAD_LETTER_TOPIC: &str = "dead-letters";
pub const RETRY_TOPIC: &str = "retries";
pub const SECRET_VAR: &str = "COURIER_TEST_WEBHOOK_SECRET";
pub const SECRET: &str = "test-s3cret";

/// What a test needs from its stack.
pub struct Spec {
    pub partitions: i32,
    pub dead_letter: bool,
    /// Whether to park failing events on a retry topic (2 s inline budget, 0.5–2 s delays).
    pub retry: bool,
    /// Customer files: (file name, TOML). `{receiver}` is replaced by the receiver's base URL.
    pub customers: Vec<(&'static str, String)>,
    /// `COURIER__...` overrides for every worker of the stack.
    pub env: &'static [(&'static str, &'static str)],
}

impl Spec {
    /// One customer, acme (write key `wk_acme`), with one signed webhook `hook` receiving at
    /// `acme/hook`; `delivery` is its `delivery = {...}` line, if any.
    pub fn one_hook(partitions: i32, delivery: &str) -> Spec {
        Spec {
            partitions,
            dead_letter: true,
            retry: false,
            customers: vec![(
                "acme.toml",
                customer("acme", "wk_acme", &[("hook", "acme/hook", delivery)]),
            )],
            env: &[],
        }
    }
}

pub struct Stack {
    pub broker: LocalBroker,
    pub receiver: Receiver,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    producer: rdkafka::producer::FutureProducer,
    env: &'static [(&'static str, &'static str)],
}

impl Stack {
    pub async fn start(spec: Spec) -> Stack {
        let mut topics = vec![(TOPIC, spec.partitions)];
        if spec.dead_letter {
            topics.push((DEAD_LETTER_TOPIC, 1));
        }
        if spec.retry {
            topics.push((RETRY_TOPIC, spec.partitions));
        }
        let broker = LocalBroker::start(&topics).expect("broker");
        let receiver = Receiver::start("127.0.0.1:0", None)
            .await
            .expect("receiver");
        let dir = tempfile::tempdir().expect("tempdir");
        let customers = dir.path().join("customers");
        std::fs::create_dir(&customers).unwrap();
        let base = receiver.url("");
        let base = base.trim_end_matches('/');
        for (name, body) in &spec.customers {
            std::fs::write(customers.join(name), body.replace("{receiver}", base)).unwrap();
        }
        let mut dead_letter = if spec.dead_letter {
            format!("[dead_letter]\ntopic = \"{DEAD_LETTER_TOPIC}\"\n")
        } else {
            String::new()
        };
        if spec.retry {
            dead_letter.push_str(&format!(
                "[retry]\ntopic = \"{RETRY_TOPIC}\"\ninline_budget_ms = 2000\ninitial_delay_ms = 500\nmax_delay_ms = 2000\n"
            ));
        }
        let config = dir.path().join("courier.toml");
        std::fs::write(
            &config,
            format!(
                r#"customers_dir = "customers"
[kafka]
brokers = "{brokers}"
group_id = "courier-test"
topics = ["{TOPIC}"]
session_timeout_ms = 6000
[consumer]
drain_timeout_ms = 2000
commit_interval_ms = 200
max_message_bytes = 4096
[delivery]
batch_max_events = 200
batch_max_age_ms = 50
retry_initial_backoff_ms = 50
retry_max_backoff_ms = 500
circuit_cooldown_ms = 1000
[log]
format = "json"
level = "info,librdkafka=warn"
[server]
listen = "127.0.0.1:0"
[control]
reload_interval_ms = 200
{dead_letter}"#,
                brokers = broker.bootstrap_servers(),
            ),
        )
        .unwrap();
        let producer = produce::producer(&broker.bootstrap_servers()).unwrap();
        Stack {
            broker,
            receiver,
            dir,
            config,
            producer,
            env: spec.env,
        }
    }

    /// A producer for producing from another task while the test watches.
    pub fn producer(&self) -> rdkafka::producer::FutureProducer {
        self.producer.clone()
    }

    pub fn brokers(&self) -> String {
        self.broker.bootstrap_servers()
    }

    /// Starts a worker process; `name` labels its log file.
    pub fn worker(&self, name: &str) -> Worker {
        self.worker_with_env(name, &[])
    }

    /// Starts a worker process with extra environment (`COURIER__...` overrides).
    pub fn worker_with_env(&self, name: &str, env: &[(&str, &str)]) -> Worker {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env(SECRET_VAR, SECRET)
            .envs(self.env.iter().copied())
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn courier");
        Worker { child, log }
    }

    /// Replays the whole topic with a worker of a new group (`courier-test-replay`) and waits
    /// until that group committed every partition to its end.
    pub async fn replay_all(&self) {
        let group = "courier-test-replay";
        let replay = self.worker_with_env("replay", &[("COURIER__KAFKA__GROUP_ID", group)]);
        eventually(Duration::from_secs(120), "the replay to commit", || {
            self.offsets_of(group)
                .iter()
                .all(|p| p.committed == Some(p.log_end))
        })
        .await;
        drop(replay);
    }

    /// With a destination's service just cut, asserts that no committed offset moves for 3 s
    /// and that messages are still waiting (the outage came mid-stream).
    pub async fn assert_offsets_hold(&self, what: &str) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let held: Vec<Option<i64>> = self.offsets().iter().map(|p| p.committed).collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let still: Vec<Option<i64>> = self.offsets().iter().map(|p| p.committed).collect();
        assert_eq!(held, still, "offsets hold while {what} is down");
        assert!(
            self.offsets().iter().any(|p| p.lag > 0),
            "{what}: the outage came mid-stream"
        );
    }

    /// The messageIds `path` received after its first `before` events, in arrival order.
    pub fn ids_since(&self, path: &str, before: usize) -> Vec<String> {
        self.receiver.events(path)[before..]
            .iter()
            .map(|e| e["messageId"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Produces raw records and waits for the broker's acknowledgement.
    pub async fn produce_raw(&self, records: Vec<(Option<Vec<u8>>, Vec<u8>)>) {
        produce::produce_all(&self.producer, TOPIC, records)
            .await
            .expect("produce");
    }

    /// Produces sample events `range` for `write_key` (message ids `<prefix>-<n>`), keyed by
    /// user; returns them.
    pub async fn produce_events(
        &self,
        write_key: &str,
        prefix: &str,
        range: std::ops::Range<u64>,
    ) -> Vec<serde_json::Value> {
        let events = sample_events(write_key, prefix, range);
        self.produce_raw(records(&events)).await;
        events
    }

    fn settings(&self) -> Settings {
        Settings::load(&self.config, Some(config::Map::new())).expect("settings")
    }

    /// The retry group's committed offsets on the retry topic.
    pub fn retry_offsets(&self) -> Vec<PartitionOffsets> {
        let settings = self.settings();
        offsets::show(
            &settings,
            &settings.retry_group_id(),
            &[RETRY_TOPIC.to_owned()],
        )
        .expect("offsets")
    }

    /// Committed offset, log end and lag per partition of the test topic.
    pub fn offsets(&self) -> Vec<PartitionOffsets> {
        let settings = self.settings();
        offsets::show(&settings, &settings.kafka.group_id, &settings.kafka.topics).expect("offsets")
    }

    /// Committed offsets of consumer group `group` on the test topic.
    pub fn offsets_of(&self, group: &str) -> Vec<PartitionOffsets> {
        let settings = self.settings();
        offsets::show(&settings, group, &settings.kafka.topics).expect("offsets")
    }

    /// Whether the group committed every partition to its end.
    pub fn fully_committed(&self) -> bool {
        self.offsets()
            .iter()
            .all(|p| p.committed == Some(p.log_end) || p.log_end == 0)
    }

    /// Every record of the dead-letter topic.
    pub fn dead_letters(&self) -> Vec<Record> {
        produce::read_topic(&self.brokers(), DEAD_LETTER_TOPIC, Duration::from_secs(20))
            .expect("read dead letters")
    }
}

pub struct Worker {
    child: Child,
    pub log: PathBuf,
}

impl Worker {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal}");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` and waits up to `timeout` for the process to exit; panics with the
    /// tail of its log (what it was doing when it did not leave) otherwise.
    pub fn stop(&mut self, signal: &str, timeout: Duration) -> ExitStatus {
        self.signal(signal);
        match self.wait(timeout) {
            Some(status) => status,
            None => panic!(
                "the worker did not exit within {timeout:?} of SIG{signal}; its log ends:\n{}",
                tail(&self.log_text(), 40)
            ),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The worker's operations server (`http://127.0.0.1:port`), from its start-up log line.
    pub fn ops_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for line in self.log_text().lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if v["message"] == "operations server listening" {
                        return format!("http://{}", v["listen"].as_str().unwrap());
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the worker never said where its operations server listens:\n{}",
                tail(&self.log_text(), 20)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GETs `url`: its status and body (status 0 and the error when there is no answer).
pub async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// The sum of the metric lines (`name{labels} value`) that contain every one of `parts`.
pub fn metric(text: &str, name: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

/// Polls `condition` every 100 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every partition is committed to its end, printing worker logs on failure.
pub async fn until_fully_committed(stack: &Stack, workers: &[&Worker], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !stack.fully_committed() {
        if Instant::now() > deadline {
            for w in workers {
                eprintln!("--- {} ---\n{}", w.log.display(), tail(&w.log_text(), 40));
            }
            panic!(
                "offsets not fully committed after {timeout:?}: {:?}",
                stack.offsets()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sample events `range` for `write_key`.
pub fn sample_events(
    write_key: &str,
    prefix: &str,
    range: std::ops::Range<u64>,
) -> Vec<serde_json::Value> {
    range.map(|n| sample::event(write_key, prefix, n)).collect()
}

/// Events as Kafka records keyed by user, as analytics pipelines key them.
pub fn records(events: &[serde_json::Value]) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    events
        .iter()
        .map(|e| {
            let key = e["userId"]
                .as_str()
                .or(e["anonymousId"].as_str())
                .map(|k| k.as_bytes().to_vec());
            (key, serde_json::to_vec(e).unwrap())
        })
        .collect()
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `messageId`s in the payloads of `records` (dead letters, parked events).
pub fn payload_ids(records: &[Record]) -> HashSet<String> {
    records
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["messageId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

pub fn ids(events: &[serde_json::Value]) -> HashSet<String> {
    events
        .iter()
        .map(|e| e["messageId"].as_str().unwrap().to_owned())
        .collect()
}

/// A customer file with one signed webhook per `(name, path, extra)` destination.
pub fn customer(id: &str, write_key: &str, destinations: &[(&str, &str, &str)]) -> String {
    let mut out = format!("id = \"{id}\"\nwrite_keys = [\"{write_key}\"]\n");
    for (name, path, extra) in destinations {
        out.push_str(&format!(
            "\n[destinations.{name}]\nkind = \"webhook\"\nenabled = true\n{extra}\n[destinations.{name}.settings]\nurl = \"{{receiver}}/{path}\"\nsecret = \"${{{SECRET_VAR}}}\"\n"
        ));
    }
    out
}

/// A real S3 server (s3s-fs over a temporary directory) with the buckets `staging` and
/// `archive`, signed with the devstack's keys.
pub struct LocalS3 {
    pub server: courier::devstack::s3::S3Server,
    _dir: tempfile::TempDir,
}

impl LocalS3 {
    pub async fn start() -> LocalS3 {
        let dir = tempfile::tempdir().unwrap();
        let server = courier::devstack::s3::S3Server::start(
            dir.path(),
            "127.0.0.1:0",
            courier::devstack::s3::ACCESS_KEY,
            courier::devstack::s3::SECRET_KEY,
            &["staging", "archive"],
        )
        .await
        .unwrap();
        LocalS3 { server, _dir: dir }
    }

    /// The location of `bucket`/`prefix` on this server, through `endpoint` (the server's own,
    /// or a proxy in front of it).
    pub fn location(
        endpoint: &str,
        bucket: &str,
        prefix: &str,
    ) -> courier_connectors::s3::S3Location {
        courier_connectors::s3::S3Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
            region: "us-east-1".into(),
            endpoint: Some(endpoint.into()),
            path_style: true,
            access_key_id: Some(courier::devstack::s3::ACCESS_KEY.into()),
            secret_access_key: Some(courier_connectors::Secret::new(
                courier::devstack::s3::SECRET_KEY,
            )),
        }
    }

    /// The same location as TOML settings lines.
    pub fn settings(endpoint: &str, bucket: &str, prefix: &str) -> String {
        format!(
            "bucket = \"{bucket}\"\nprefix = \"{prefix}\"\nendpoint = \"{endpoint}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            courier::devstack::s3::ACCESS_KEY,
            courier::devstack::s3::SECRET_KEY
        )
    }
}
