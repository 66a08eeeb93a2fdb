//! The `courier` command line: `run`, `config check`, `offsets show|reset`, `connectors list`,
//! `destinations list|enable|disable|set`, `replay`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use courier::settings::{RuntimeSettings, Settings};
use courier::{customers, destinations, edit, offsets, replay, telemetry, worker};
use courier_connectors::Registry;

/// Per-event allocations are the hot path's main cost: mimalloc's thread-local free lists beat
/// glibc malloc's arenas there (measured in `bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Courier delivers analytics events from Kafka to each customer's destinations, at least once.
#[derive(Debug, Parser)]
#[command(name = "courier", version)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "COURIER_CONFIG",
        default_value = "config/courier.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a worker: join the group and deliver until SIGTERM or SIGINT.
    Run,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect the group's offsets.
    #[command(subcommand)]
    Offsets(OffsetsCommand),
    /// Inspect the connector kinds.
    #[command(subcommand)]
    Connectors(ConnectorsCommand),
    /// List and change customers' destinations in the configured store (files or PostgreSQL);
    /// running workers apply changes within seconds.
    #[command(subcommand)]
    Destinations(DestinationsCommand),
    /// Re-deliver a range of one partition to chosen customers and destinations, without
    /// joining the live group or moving its offsets.
    Replay(ReplayArgs),
}

#[derive(Debug, Subcommand)]
enum DestinationsCommand {
    /// Every destination of every customer, with its kind and whether it is enabled.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Turn a destination on.
    Enable(DestinationRef),
    /// Turn a destination off (events already routed to it are still delivered).
    Disable(DestinationRef),
    /// Set connector settings of a destination (`key=value`; values are TOML literals, or
    /// else strings).
    Set {
        #[command(flatten)]
        destination: DestinationRef,
        /// `key=value` pairs.
        #[arg(required = true, value_parser = parse_pair)]
        pairs: Vec<(String, String)>,
    },
}

#[derive(Debug, clap::Args)]
struct DestinationRef {
    /// The customer's id.
    #[arg(long)]
    customer: String,
    /// The destination's name.
    #[arg(long)]
    destination: String,
}

fn parse_pair(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{raw:?} is not key=value"))
}

fn parse_time(raw: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{raw:?} is not an RFC 3339 time such as 2026-11-29T10:00:00Z: {e}"))
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["from_offset", "from_time"])))]
#[command(group(clap::ArgGroup::new("to").args(["to_offset", "to_time"])))]
struct ReplayArgs {
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The partition.
    #[arg(long)]
    partition: i32,
    /// Start at this offset.
    #[arg(long)]
    from_offset: Option<i64>,
    /// Start at the first message at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    from_time: Option<i64>,
    /// End at this offset, included (default: the log end at start).
    #[arg(long)]
    to_offset: Option<i64>,
    /// End before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    to_time: Option<i64>,
    /// Only this customer (repeatable; default: all).
    #[arg(long = "customer")]
    customers: Vec<String>,
    /// Only destinations with this name (repeatable; default: all enabled ones).
    #[arg(long = "destination")]
    destinations: Vec<String>,
    /// Report what would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and every customer file, and print the effective
    /// configuration with secrets redacted.
    Check,
}

#[derive(Debug, Subcommand)]
enum OffsetsCommand {
    /// Committed offset, log end offset and lag of every partition.
    Show {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Plan (and with --execute apply) moving the group's committed offsets; refuses to apply
    /// while the group has active members.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["to_offset", "to_time", "to_earliest", "to_latest"])))]
    Reset {
        /// Move to this offset (clamped to each log's start and end).
        #[arg(long)]
        to_offset: Option<i64>,
        /// Move to the first message at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        to_time: Option<i64>,
        /// Move to the log start.
        #[arg(long)]
        to_earliest: bool,
        /// Move to the log end.
        #[arg(long)]
        to_latest: bool,
        /// Only this partition (default: all of the group's topics' partitions).
        #[arg(long)]
        partition: Option<i32>,
        /// Apply the plan (default: only print it).
        #[arg(long)]
        execute: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectorsCommand {
    /// Every connector kind with its settings.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A panic in any task (a partition, a destination) ends the worker at once. Nothing past a
/// done message was committed, so the group redelivers the rest; a worker limping on with a
/// dead task would instead hold its partitions without saying so.
fn abort_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "a task panicked; aborting so the group redelivers its messages");
        default_hook(info);
        std::process::abort();
    }));
}

/// How long a stopping worker waits for the runtime's blocking threads to finish.
const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// The task runtime with the threads `settings` give (the multi-threaded scheduler even with
/// one, so that `block_on`'s own thread only waits and tasks keep their blocking pool).
fn runtime(settings: &RuntimeSettings) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads())
        .enable_all()
        .thread_name("courier")
        .build()?)
}

async fn destinations_command(
    settings: &Settings,
    command: DestinationsCommand,
) -> anyhow::Result<()> {
    let (target, change) = match command {
        DestinationsCommand::List { json } => {
            let listed = edit::list(settings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                println!(
                    "{:<20} {:<24} {:<12} enabled",
                    "customer", "destination", "kind"
                );
                for d in listed {
                    println!(
                        "{:<20} {:<24} {:<12} {}",
                        d.customer, d.name, d.kind, d.enabled
                    );
                }
            }
            return Ok(());
        }
        DestinationsCommand::Enable(d) => (d, edit::Change::Enabled(true)),
        DestinationsCommand::Disable(d) => (d, edit::Change::Enabled(false)),
        DestinationsCommand::Set { destination, pairs } => {
            (destination, edit::Change::Settings(pairs))
        }
    };
    edit::apply(settings, &target.customer, &target.destination, &change).await?;
    println!(
        "{}/{}: updated; running workers apply it within control.reload_interval_ms",
        target.customer, target.destination
    );
    Ok(())
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run => {
            let settings = Settings::load(&cli.config, None)?;
            telemetry::init(&settings.log);
            abort_on_panic();
            let runtime = runtime(&settings.runtime)?;
            let result = runtime.block_on(async {
                let shutdown = worker::shutdown_on_signals()?;
                worker::run(settings, shutdown).await
            });
            // A commit the worker stopped waiting for (its shutdown is bounded) may still hold
            // a blocking thread; dropping the runtime would wait for it without a bound.
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            result
        }
        Command::Config(ConfigCommand::Check) => {
            let settings = Settings::load(&cli.config, None)?;
            let customers = customers::load_dir(
                &settings.customers_dir,
                &settings.delivery,
                &customers::process_env,
            )?;
            let effective = destinations::effective(&customers, &Registry::builtin())?;
            let out = serde_json::json!({ "settings": settings, "customers": effective });
            println!("{}", serde_json::to_string_pretty(&out)?);
            eprintln!("configuration ok: {} customers", customers.len());
            Ok(())
        }
        Command::Offsets(OffsetsCommand::Show { json }) => {
            let settings = Settings::load(&cli.config, None)?;
            let mut groups = vec![(
                settings.kafka.group_id.clone(),
                settings.kafka.topics.clone(),
            )];
            if let Some(topic) = &settings.retry.topic {
                groups.push((settings.retry_group_id(), vec![topic.clone()]));
            }
            let mut all = serde_json::Map::new();
            for (group, topics) in groups {
                let rows = offsets::show(&settings, &group, &topics).context("reading offsets")?;
                if json {
                    all.insert(group, serde_json::to_value(&rows)?);
                } else {
                    println!("group {group}");
                    print!("{}", offsets::table(&rows));
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
            Ok(())
        }
        Command::Offsets(OffsetsCommand::Reset {
            to_offset,
            to_time,
            to_earliest,
            to_latest,
            partition,
            execute,
        }) => {
            let settings = Settings::load(&cli.config, None)?;
            let to = match (to_offset, to_time, to_earliest, to_latest) {
                (Some(o), ..) => offsets::ResetTo::Offset(o),
                (_, Some(t), ..) => offsets::ResetTo::Time(t),
                (_, _, true, _) => offsets::ResetTo::Earliest,
                _ => offsets::ResetTo::Latest,
            };
            let group = &settings.kafka.group_id;
            let moves =
                offsets::plan_reset(&settings, group, &settings.kafka.topics, to, partition)?;
            println!("group {group}");
            print!("{}", offsets::plan_table(&moves));
            if execute {
                offsets::execute_reset(&settings, group, &settings.kafka.topics, &moves)?;
                println!("applied: the group's next worker starts at the new offsets");
            } else {
                println!(
                    "plan only: add --execute to apply (with every worker of the group stopped)"
                );
            }
            Ok(())
        }
        Command::Destinations(command) => {
            let settings = Settings::load(&cli.config, None)?;
            runtime(&settings.runtime)?.block_on(destinations_command(&settings, command))
        }
        Command::Replay(args) => {
            let settings = Settings::load(&cli.config, None)?;
            let request = replay::Request {
                topic: args.topic,
                partition: args.partition,
                from: match (args.from_offset, args.from_time) {
                    (Some(o), _) => replay::From::Offset(o),
                    (_, Some(t)) => replay::From::Time(t),
                    _ => anyhow::bail!("give --from-offset or --from-time"),
                },
                to: match (args.to_offset, args.to_time) {
                    (Some(o), _) => replay::To::Offset(o),
                    (_, Some(t)) => replay::To::Time(t),
                    _ => replay::To::End,
                },
                customers: args.customers,
                destinations: args.destinations,
                dry_run: args.dry_run,
            };
            // Delivery logs go to stderr at warn, so the summary stays readable.
            telemetry::init_stderr(&courier::settings::LogSettings {
                level: "warn".into(),
                ..settings.log.clone()
            });
            let summary = runtime(&settings.runtime)?.block_on(replay::run(&settings, &request))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.text(request.dry_run));
            }
            anyhow::ensure!(
                request.dry_run || summary.complete(),
                "not every copy in range was delivered or dead-lettered"
            );
            Ok(())
        }
        Command::Connectors(ConnectorsCommand::List) => {
            for kind in Registry::builtin().kinds() {
                println!("{}: {}", kind.kind(), kind.description());
                for s in kind.settings_doc() {
                    let default = s
                        .default
                        .map_or("required".to_string(), |d| format!("default {d}"));
                    println!(
                        "  {:<12} {:<18} {:<16} {}",
                        s.name, s.type_name, default, s.description
                    );
                }
            }
            Ok(())
        }
    }
}
