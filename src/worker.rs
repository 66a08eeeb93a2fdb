//! `courier run`: wires configuration, destinations, the dead-letter producer and the group
//! consumer together, and runs until the shutdown token fires.
//!
//! Start-up order matters: destinations are built (and the configuration rejected if any fails)
//! before the worker joins the group, so a worker that cannot deliver never takes partitions.
//! Shutdown is a value passed in (a [`CancellationToken`]), not a global; when it fires the
//! poll thread drains, commits and leaves the group, and `run` returns.

use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use courier_connectors::Registry;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::consumer::{run_poll_loop, CourierConsumer, CourierContext};
use crate::customers;
use crate::deadletter::DeadLetters;
use crate::destinations;
use crate::kafka;
use crate::partition::PartitionEnv;
use crate::settings::Settings;

/// Runs a worker until `shutdown` fires and the worker has drained and left the group.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let customers = customers::load_dir(
        &settings.customers_dir,
        &settings.delivery,
        &customers::process_env,
    )?;
    // With no customers every event would be dead-lettered as an unknown write key: a
    // deployment mistake, not a configuration to run.
    anyhow::ensure!(
        !customers.is_empty(),
        "no customer files (*.toml) in {}",
        settings.customers_dir.display()
    );
    let registry = Registry::builtin();
    let dead_letters = match &settings.dead_letter.topic {
        Some(topic) => {
            let producer: FutureProducer = kafka::producer_config(&settings)
                .create()
                .context("creating the dead-letter producer")?;
            DeadLetters::new(producer, topic.clone())
        }
        None => {
            tracing::warn!(
                "no dead_letter.topic: a message that cannot be delivered holds its partition"
            );
            DeadLetters::disabled()
        }
    };
    let table = destinations::routing_table(
        &customers,
        &registry,
        &destinations::http_client(),
        &dead_letters,
    )?;
    let routes = Arc::new(ArcSwap::from_pointee(table));
    let env = Arc::new(PartitionEnv {
        routes,
        dead_letters,
        limits: settings.consumer.clone(),
    });
    let context = CourierContext::new(tokio::runtime::Handle::current(), env);
    let consumer: Arc<CourierConsumer> = Arc::new(
        kafka::consumer_config(&settings)
            .create_with_context(context)
            .context("creating the consumer")?,
    );
    CourierContext::bind(&consumer);
    let topics: Vec<&str> = settings.kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("subscribing")?;
    tracing::info!(
        group = &*settings.kafka.group_id,
        topics = ?settings.kafka.topics,
        customers = customers.len(),
        "worker started"
    );

    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("courier-poll".into())
        .spawn(move || {
            run_poll_loop(consumer, shutdown);
            let _ = finished_tx.send(());
        })
        .context("starting the poll thread")?;
    finished_rx.await.context("the poll thread panicked")?;
    tracing::info!("worker stopped");
    Ok(())
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
