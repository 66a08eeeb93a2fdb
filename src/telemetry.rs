//! Logging: JSON lines, or human-readable text on a terminal; the worker logs on stdout, the
//! operator commands on stderr (their stdout is the answer, often `--json` for scripts).
//!
//! `RUST_LOG` overrides the configured level. librdkafka's own log lines arrive through the
//! `log` crate and are bridged into `tracing`.

use std::io::IsTerminal;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber writing to stdout, for the worker (once; later calls are
/// ignored).
pub fn init(settings: &LogSettings) {
    install(settings, false);
}

/// Installs the global subscriber writing to stderr, for commands whose stdout is their
/// answer (once; later calls are ignored).
pub fn init_stderr(settings: &LogSettings) {
    install(settings, true);
}

fn install(settings: &LogSettings, stderr: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto if stderr => !std::io::stderr().is_terminal(),
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let writer = if stderr {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        BoxMakeWriter::new(std::io::stdout)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
