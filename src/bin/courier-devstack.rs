//! `courier-devstack`: the local stack for the demo — a broker, a receiver, sample events.
//!
//! Each subcommand is small and does one thing, so scripts compose them; see
//! `scripts/demo.sh`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use courier::devstack::bench;
use courier::devstack::contracts::{Contracts, Credentials};
use courier::devstack::redshift_front::RedshiftFront;
use courier::devstack::s3::{self, S3Server};
use courier::devstack::{broker::LocalBroker, produce, receiver::Receiver, sample};
use courier::offsets;
use courier::settings::Settings;
use courier_connectors::s3::S3Location;
use courier_connectors::Secret;

/// Local stack for Courier's demo: broker, receiver, sample events.
#[derive(Debug, Parser)]
#[command(name = "courier-devstack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a Kafka-protocol broker on loopback until SIGTERM or SIGINT.
    Broker {
        /// A topic to create, as `name:partitions` (repeatable).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Also create the topics a worker configuration names (`kafka.topics` with
        /// `--partitions` each, the retry topic likewise, and the dead-letter topic with one
        /// partition).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Partition count for the topics taken from `--config`.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
        /// Where to write the bootstrap servers once the broker listens.
        #[arg(long)]
        bootstrap_file: PathBuf,
    },
    /// Run an HTTP receiver that records what destinations deliver, until SIGTERM or SIGINT.
    Receive {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: String,
        /// Directory for one NDJSON file of received events per path.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// `path=ENV_VAR`: require signatures on `path` made with the secret in `ENV_VAR`.
        #[arg(long = "secret")]
        secrets: Vec<String>,
    },
    /// Run the SaaS contract servers (Amplitude, Mixpanel, Slack, Segment) until SIGTERM or
    /// SIGINT, with the credentials of `Credentials::default()`.
    Contracts {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18090")]
        listen: String,
    },
    /// Run an S3 server (s3s-fs, SigV4 with the devstack's keys) over a directory until SIGTERM
    /// or SIGINT.
    S3 {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18070")]
        listen: String,
        /// The directory that holds the buckets.
        #[arg(long)]
        root: PathBuf,
        /// A bucket to create (repeatable).
        #[arg(long = "bucket")]
        buckets: Vec<String>,
    },
    /// Run the Redshift-compatible front (a PostgreSQL wire proxy that executes
    /// `COPY ... FROM 's3://...'` from an S3 server) until SIGTERM or SIGINT.
    RedshiftFront {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:15439")]
        listen: String,
        /// The PostgreSQL every other statement goes to.
        #[arg(long, default_value = "127.0.0.1:5432")]
        backend: String,
        /// The S3 endpoint the staged files are read from (signed with the devstack's keys).
        #[arg(long, default_value = "http://127.0.0.1:18070")]
        s3_endpoint: String,
    },
    /// Produce the benchmark backlog: `count` events of 100 customers (Zipf), 0.5–1 KB each.
    BenchProduce {
        /// Bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Topic to produce to.
        #[arg(long)]
        topic: String,
        /// How many events.
        #[arg(long, default_value_t = 500_000)]
        count: u64,
        /// The first event's number (messageIds are `bench-<n>`).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Events per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<u64>,
        /// Stamp each event with its send time (`properties.bench_sent_ms`) for latency runs.
        #[arg(long)]
        stamp: bool,
    },
    /// The benchmark ceiling: read every partition of a topic to its end with one raw
    /// consumer, counting only; prints a JSON report.
    Ceiling {
        /// Bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// A group id (nothing is committed).
        #[arg(long, default_value = "bench-ceiling")]
        group: String,
    },
    /// Run a counting webhook receiver until SIGTERM or SIGINT (`GET /_count`).
    Count {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18095")]
        listen: String,
    },
    /// Produce sample events, spread over the given write keys, plus optional bad input.
    Produce {
        /// Bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Topic to produce to.
        #[arg(long)]
        topic: String,
        /// A write key to send events with (repeatable; events are spread evenly).
        #[arg(long = "write-key", required = true)]
        write_keys: Vec<String>,
        /// How many events.
        #[arg(long, default_value_t = 30_000)]
        count: u64,
        /// Also produce one of each kind of bad input (for the dead-letter topic).
        #[arg(long)]
        bad_input: bool,
    },
    /// Wait until the group's committed offsets reach the end of every partition.
    WaitCommitted {
        /// The worker's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Print what a running receiver has accepted, per path; fails if any signature was bad.
    Received {
        /// The receiver's address.
        #[arg(long, default_value = "127.0.0.1:18080")]
        receiver: String,
    },
    /// Summarise a dead-letter topic: count per stage and reason.
    DeadLetters {
        /// Bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// The dead-letter topic.
        #[arg(long)]
        topic: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn until_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Broker {
            topics,
            config,
            partitions,
            bootstrap_file,
        } => {
            let mut specs: Vec<(String, i32)> = Vec::new();
            for t in &topics {
                let (name, count) = t
                    .rsplit_once(':')
                    .context("--topic takes name:partitions")?;
                specs.push((
                    name.to_owned(),
                    count.parse::<i32>().context("partition count")?,
                ));
            }
            if let Some(config) = config {
                let settings = Settings::load(&config, None)?;
                specs.extend(
                    settings
                        .kafka
                        .topics
                        .iter()
                        .map(|t| (t.clone(), partitions)),
                );
                specs.extend(settings.dead_letter.topic.iter().map(|t| (t.clone(), 1)));
                specs.extend(settings.retry.topic.iter().map(|t| (t.clone(), partitions)));
            }
            anyhow::ensure!(!specs.is_empty(), "name topics with --topic or --config");
            let specs: Vec<(&str, i32)> = specs.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            let broker = LocalBroker::start(&specs)?;
            let bootstrap = broker.bootstrap_servers();
            let tmp = bootstrap_file.with_extension("tmp");
            std::fs::write(&tmp, &bootstrap)?;
            std::fs::rename(&tmp, &bootstrap_file)?;
            println!("broker listening on {bootstrap}");
            until_signal().await?;
            drop(broker);
            let _ = std::fs::remove_file(&bootstrap_file);
            Ok(())
        }
        Command::Receive {
            listen,
            out_dir,
            secrets,
        } => {
            if let Some(dir) = &out_dir {
                std::fs::create_dir_all(dir)?;
            }
            let receiver = Receiver::start(&listen, out_dir).await?;
            for s in secrets {
                let (path, var) = s.split_once('=').context("--secret takes path=ENV_VAR")?;
                let secret = std::env::var(var)
                    .with_context(|| format!("environment variable {var} is not set"))?;
                receiver.expect_signature(path, secret.as_bytes());
            }
            println!("receiver listening on {}", receiver.url(""));
            until_signal().await
        }
        Command::S3 {
            listen,
            root,
            buckets,
        } => {
            let buckets: Vec<&str> = buckets.iter().map(String::as_str).collect();
            let server =
                S3Server::start(&root, &listen, s3::ACCESS_KEY, s3::SECRET_KEY, &buckets).await?;
            println!("s3 server listening on {}", server.endpoint());
            until_signal().await
        }
        Command::RedshiftFront {
            listen,
            backend,
            s3_endpoint,
        } => {
            let location = S3Location {
                bucket: String::new(),
                prefix: String::new(),
                region: "us-east-1".into(),
                endpoint: Some(s3_endpoint),
                path_style: true,
                access_key_id: Some(s3::ACCESS_KEY.into()),
                secret_access_key: Some(Secret::new(s3::SECRET_KEY)),
            };
            let front = RedshiftFront::start(&listen, &backend, location).await?;
            println!("redshift front listening on 127.0.0.1:{}", front.port);
            until_signal().await
        }
        Command::BenchProduce {
            brokers,
            topic,
            count,
            from,
            rate,
            stamp,
        } => {
            let producer = produce::producer(&brokers)?;
            let started = Instant::now();
            let mut produced = 0;
            // In slices of a tenth of a second's worth, paced when a rate is given.
            let slice = rate.map_or(10_000, |r| (r / 10).max(1));
            let mut n = from;
            while n < from + count {
                let end = (n + slice).min(from + count);
                let records: Vec<_> = (n..end)
                    .map(|i| {
                        let event = bench::event(i, stamp.then(bench::now_ms));
                        let key = event["userId"].as_str().map(|k| k.as_bytes().to_vec());
                        (key, serde_json::to_vec(&event).expect("json"))
                    })
                    .collect();
                produced += produce::produce_all(&producer, &topic, records).await?;
                if let Some(rate) = rate {
                    let due = Duration::from_secs_f64((end - from) as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                n = end;
            }
            println!(
                "produced {produced} messages to {topic} in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Ceiling {
            brokers,
            topic,
            group,
        } => {
            let report =
                tokio::task::spawn_blocking(move || bench::ceiling(&brokers, &topic, &group))
                    .await??;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Count { listen } => {
            let counter = bench::Counter::start(&listen).await?;
            println!("counter listening on http://{}", counter.addr());
            until_signal().await
        }
        Command::Contracts { listen } => {
            let server = Contracts::start(&listen, Credentials::default()).await?;
            println!("contract servers listening on {}", server.base_url());
            until_signal().await
        }
        Command::Produce {
            brokers,
            topic,
            write_keys,
            count,
            bad_input,
        } => {
            let producer = produce::producer(&brokers)?;
            let started = Instant::now();
            let keys = &write_keys;
            let records = (0..count).map(|n| {
                let write_key = &keys[(n % keys.len() as u64) as usize];
                let event = sample::event(write_key, &format!("demo-{write_key}"), n);
                let key = event["userId"]
                    .as_str()
                    .or(event["anonymousId"].as_str())
                    .map(|k| k.as_bytes().to_vec());
                (key, serde_json::to_vec(&event).expect("json"))
            });
            let mut produced = produce::produce_all(&producer, &topic, records).await?;
            if bad_input {
                let bad: Vec<(Option<Vec<u8>>, Vec<u8>)> = vec![
                    (None, b"this is not json".to_vec()),
                    (None, br#"[{"type":"track"}]"#.to_vec()),
                    (None, br#"{"messageId":"no-type","writeKey":"x","userId":"u"}"#.to_vec()),
                    (None, br#"{"type":"track","event":"E","messageId":"stranger","writeKey":"wk_unknown","userId":"u"}"#.to_vec()),
                    (None, b"{\"type\":\"track\",\"event\":\"\xff\"}".to_vec()),
                ];
                produced += produce::produce_all(&producer, &topic, bad).await?;
            }
            println!(
                "produced {produced} messages to {topic} in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::WaitCommitted {
            config,
            timeout_secs,
        } => {
            let settings = Settings::load(&config, None)?;
            let started = Instant::now();
            loop {
                let rows = tokio::task::block_in_place(|| {
                    offsets::show(&settings, &settings.kafka.group_id, &settings.kafka.topics)
                })?;
                let lag: i64 = rows.iter().map(|r| r.lag).sum();
                if lag == 0
                    && rows
                        .iter()
                        .all(|r| r.committed.is_some() || r.log_end == r.log_start)
                {
                    println!(
                        "all partitions committed to their end after {:.2}s",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(timeout_secs),
                    "still {lag} messages behind after {timeout_secs}s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Command::Received { receiver } => {
            let url = format!("http://{receiver}/_summary");
            let body = reqwest::get(&url)
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            let summary: std::collections::BTreeMap<
                String,
                courier::devstack::receiver::PathStats,
            > = serde_json::from_slice(&body).context("reading the receiver's summary")?;
            println!(
                "{:<24} {:>10} {:>10} {:>15}",
                "destination path", "events", "requests", "bad signatures"
            );
            let mut bad = 0;
            for (path, s) in summary {
                println!(
                    "{path:<24} {:>10} {:>10} {:>15}",
                    s.events, s.requests, s.bad_signatures
                );
                bad += s.bad_signatures;
            }
            anyhow::ensure!(bad == 0, "{bad} requests carried a bad signature");
            Ok(())
        }
        Command::DeadLetters { brokers, topic } => {
            let records = tokio::task::block_in_place(|| {
                produce::read_topic(&brokers, &topic, Duration::from_secs(30))
            })?;
            let mut counts = std::collections::BTreeMap::new();
            for r in &records {
                let key = format!(
                    "{} | {}",
                    r.header("courier.stage").unwrap_or("?"),
                    r.header("courier.reason").unwrap_or("?")
                );
                *counts.entry(key).or_insert(0u64) += 1;
            }
            println!("{} dead letters in {topic}", records.len());
            for (k, n) in counts {
                println!("  {n:>6}  {k}");
            }
            Ok(())
        }
    }
}
