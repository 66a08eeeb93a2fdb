//! `courier run`: wires configuration, destinations, the dead-letter producer and the group
//! consumer together, and runs until the shutdown token fires.
//!
//! With `retry.topic` set, the worker runs a second consumer (group `retry.group_id`) on the
//! retry topic, with its own poll thread and partition tasks, sharing the routing table and the
//! destination instances.
//!
//! Start-up order matters: the operations server listens first (liveness), destinations are
//! built (and the configuration rejected if any fails) before the worker joins the group, so a
//! worker that cannot deliver never takes partitions; `/readyz` turns 200 once it joined. The
//! control loop then follows the configuration store ([`crate::control`]).
//! Shutdown is a value passed in (a [`CancellationToken`]), not a global; when it fires the
//! poll thread drains, commits and leaves the group, and `run` returns.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::consumer::{run_poll_loop, CourierConsumer, CourierContext};
use crate::control::Control;
use crate::deadletter::DeadLetters;
use crate::deliver::Fallback;
use crate::kafka;
use crate::ops;
use crate::partition::{Mode, PartitionEnv};
use crate::producer::AckedProducer;
use crate::retry::Parking;
use crate::settings::Settings;
use crate::status::Status;

/// Runs a worker until `shutdown` fires and the worker has drained and left the group.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let status = Status::new();
    let metrics = ops::install_recorder()?;
    let ops_stop = CancellationToken::new();
    ops::serve(
        &settings.server.listen,
        status.clone(),
        metrics,
        ops_stop.clone(),
    )
    .await?;
    // One idempotent producer serves the dead-letter and the retry topics.
    let producer =
        AckedProducer::new(&kafka::producer_config(&settings)).context("creating the producer")?;
    let dead_letters = match &settings.dead_letter.topic {
        Some(topic) => DeadLetters::new(producer.clone(), topic.clone()),
        None => {
            tracing::warn!(
                "no dead_letter.topic: a message that cannot be delivered holds its partition"
            );
            DeadLetters::disabled()
        }
    };
    let parking = settings
        .retry
        .topic
        .as_ref()
        .map(|topic| Parking::new(producer, topic.clone(), settings.retry.clone()));
    let fallback = Fallback {
        dead_letters: dead_letters.clone(),
        parking,
    };
    let control = Control::start(settings.clone(), fallback, status.clone()).await?;
    // The drain, then the final commit and leaving the group: once the session timeout is
    // past too, waiting longer gains nothing over having crashed.
    let shutdown_timeout = Duration::from_millis(
        settings.consumer.drain_timeout_ms + settings.kafka.session_timeout_ms,
    );
    let routes = control.routes();
    status.set_built(routes.clone());

    let mut consumers = vec![start_consumer(
        kafka::consumer_config(&settings),
        &settings.kafka.topics,
        PartitionEnv {
            routes: routes.clone(),
            dead_letters: dead_letters.clone(),
            limits: settings.consumer.clone(),
            budget: Budget::new(settings.consumer.max_in_flight_bytes),
            mode: Mode::Main,
            status: status.clone(),
        },
        shutdown.clone(),
        shutdown_timeout,
    )?];
    if let Some(topic) = &settings.retry.topic {
        let mut config = kafka::consumer_config(&settings);
        config.set("group.id", settings.retry_group_id());
        consumers.push(start_consumer(
            config,
            std::slice::from_ref(topic),
            PartitionEnv {
                routes,
                dead_letters,
                limits: settings.consumer.clone(),
                budget: Budget::new(settings.consumer.max_in_flight_bytes),
                mode: Mode::Retry,
                status: status.clone(),
            },
            shutdown.clone(),
            shutdown_timeout,
        )?);
    }
    tokio::spawn(control.run(shutdown.clone()));
    let draining = status.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        draining.set_draining();
    });
    tracing::info!(
        group = &*settings.kafka.group_id,
        topics = ?settings.kafka.topics,
        retry_topic = settings.retry.topic.as_deref(),
        "worker started"
    );
    for finished in consumers {
        finished.await.context("a poll thread panicked")?;
    }
    ops_stop.cancel();
    tracing::info!("worker stopped");
    Ok(())
}

/// Creates a consumer with `config` for `topics`, subscribes, and serves it on its own poll
/// thread until `shutdown`; the returned receiver fires when that thread has finished, which
/// is at most `shutdown_timeout` after `shutdown`, plus one poll.
fn start_consumer(
    config: rdkafka::ClientConfig,
    topics: &[String],
    env: PartitionEnv,
    shutdown: CancellationToken,
    shutdown_timeout: Duration,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    let mode = env.mode;
    let context = CourierContext::new(
        tokio::runtime::Handle::current(),
        Arc::new(env),
        config.get("auto.offset.reset"),
    );
    let consumer: Arc<CourierConsumer> = Arc::new(
        config
            .create_with_context(context)
            .context("creating the consumer")?,
    );
    CourierContext::bind(&consumer);
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).context("subscribing")?;
    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("courier-poll-{mode:?}").to_lowercase())
        .spawn(move || {
            run_poll_loop(consumer, shutdown, shutdown_timeout);
            let _ = finished_tx.send(());
        })
        .context("starting the poll thread")?;
    Ok(finished_rx)
}

/// Fires the returned token on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let fire = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
        fire.cancel();
    });
    Ok(token)
}
