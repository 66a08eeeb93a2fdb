//! The `courier` command line: `run`, `config check`, `offsets show`, `connectors list`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use courier::settings::Settings;
use courier::{customers, destinations, offsets, telemetry, worker};
use courier_connectors::Registry;

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

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run => {
            let settings = Settings::load(&cli.config, None)?;
            telemetry::init(&settings.log);
            abort_on_panic();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("courier")
                .build()?;
            runtime.block_on(async {
                let shutdown = worker::shutdown_on_signals()?;
                worker::run(settings, shutdown).await
            })
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
