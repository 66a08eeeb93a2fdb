//! Customer files: who sends with which write keys, and where their events go.
//!
//! One TOML file per customer in `customers_dir`:
//!
//! ```toml
//! id = "acme"
//! write_keys = ["wk_acme_web"]
//!
//! [destinations.product_hook]
//! kind = "webhook"
//! enabled = true
//! filter = { types = ["track", "page"], deny_events = ["Debug Ping"] }
//! delivery = { batch_max_events = 100 }   # overrides [delivery] of courier.toml
//! [destinations.product_hook.settings]    # the connector kind's own settings
//! url = "https://hooks.acme.example/courier"
//! secret = "${ACME_WEBHOOK_SECRET}"
//! ```
//!
//! Invariants after [`load_dir`]: customer ids and write keys are unique across all files;
//! every `${VAR}` in settings was replaced by the environment variable's value (an unset
//! variable is an error naming the file and field); filters and delivery overrides are valid.
//! Connector settings are only checked by building the destination (see
//! [`crate::destinations`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use courier_connectors::EventType;
use serde::Deserialize;

use crate::route::EventFilter;
use crate::settings::DeliverySettings;

/// A customer file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerFile {
    id: String,
    write_keys: Vec<String>,
    #[serde(default)]
    destinations: BTreeMap<String, DestinationFile>,
}

/// One destination as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationFile {
    kind: String,
    enabled: bool,
    #[serde(default)]
    filter: FilterFile,
    #[serde(default)]
    delivery: toml::Table,
    #[serde(default)]
    settings: toml::Table,
}

/// A destination's event filter as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterFile {
    /// Only these event types (all when absent).
    types: Option<Vec<EventType>>,
    /// Only events with these names (track `event`, page/screen `name`).
    allow_events: Option<Vec<String>>,
    /// Never events with these names.
    #[serde(default)]
    deny_events: Vec<String>,
}

/// A validated customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The customer's id.
    pub id: String,
    /// The write keys of the customer's sources.
    pub write_keys: Vec<String>,
    /// The customer's destinations, enabled or not, sorted by name.
    pub destinations: Vec<DestinationConfig>,
    /// The file it came from.
    pub file: PathBuf,
}

/// A validated destination of a customer.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// The destination's name within its customer.
    pub name: String,
    /// The connector kind.
    pub kind: String,
    /// Whether events are delivered to it.
    pub enabled: bool,
    /// Which events it receives.
    pub filter: EventFilter,
    /// Batching, concurrency and retry limits (defaults with this destination's overrides).
    pub delivery: DeliverySettings,
    /// The connector's settings, secrets expanded. Never print: build the destination and
    /// print its redacted effective settings instead.
    pub settings: serde_json::Value,
}

/// A customer file that does not validate; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct CustomerError {
    /// The customer file.
    pub file: PathBuf,
    /// What is wrong, naming the field.
    pub message: String,
}

/// Loads and validates every `*.toml` file of `dir`, with `defaults` for delivery limits and
/// `env` resolving `${VAR}` references.
pub fn load_dir(
    dir: &Path,
    defaults: &DeliverySettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Customer>, CustomerError> {
    let err = |file: &Path, message: String| CustomerError {
        file: file.to_owned(),
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| err(dir, format!("cannot read customers directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let customers = files
        .iter()
        .map(|file| load_file(file, defaults, env))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(&customers)?;
    Ok(customers)
}

/// Customer ids and write keys must each belong to one customer.
pub fn check_unique(customers: &[Customer]) -> Result<(), CustomerError> {
    let err = |file: &Path, message: String| CustomerError {
        file: file.to_owned(),
        message,
    };
    let mut ids: HashMap<&str, &Path> = HashMap::new();
    let mut keys: HashMap<&str, &Path> = HashMap::new();
    for customer in customers {
        let file = &customer.file;
        if let Some(other) = ids.insert(&customer.id, file) {
            return Err(err(
                file,
                format!("id {:?} is also used by {}", customer.id, other.display()),
            ));
        }
        for key in &customer.write_keys {
            if let Some(other) = keys.insert(key, file) {
                // The key itself is a credential of the source: name the files, not the key.
                return Err(err(
                    file,
                    format!(
                        "write_keys: a write key of this customer is also listed by {}",
                        other.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Loads and validates one customer file.
pub fn load_file(
    file: &Path,
    defaults: &DeliverySettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Customer, CustomerError> {
    let err = |message: String| CustomerError {
        file: file.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
    let parsed: CustomerFile = {
        let de = toml::Deserializer::parse(&text).map_err(|e| err(e.to_string()))?;
        serde_path_to_error::deserialize(de)
            .map_err(|e| err(format!("{}: {}", e.path(), e.inner().message())))?
    };
    validate(parsed, file, defaults, env)
}

/// Validates one customer given as a TOML table (the configuration store's rows), `origin`
/// naming where it came from in errors.
pub fn from_table(
    table: toml::Table,
    origin: &Path,
    defaults: &DeliverySettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Customer, CustomerError> {
    let parsed: CustomerFile = serde_path_to_error::deserialize(toml::Value::Table(table))
        .map_err(|e| CustomerError {
            file: origin.to_owned(),
            message: format!("{}: {}", e.path(), e.inner()),
        })?;
    validate(parsed, origin, defaults, env)
}

fn validate(
    parsed: CustomerFile,
    file: &Path,
    defaults: &DeliverySettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Customer, CustomerError> {
    let err = |message: String| CustomerError {
        file: file.to_owned(),
        message,
    };
    if parsed.id.trim().is_empty()
        || !parsed
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(err(format!(
            "id: {:?} must be non-empty letters, digits, '_' or '-'",
            parsed.id
        )));
    }
    if parsed.write_keys.is_empty() || parsed.write_keys.iter().any(|k| k.trim().is_empty()) {
        return Err(err(
            "write_keys: list at least one non-empty write key".into()
        ));
    }
    let mut destinations = Vec::with_capacity(parsed.destinations.len());
    for (name, d) in parsed.destinations {
        let at = format!("destinations.{name}");
        let delivery = apply_overrides(defaults, d.delivery)
            .map_err(|m| err(format!("{at}.delivery: {m}")))?;
        delivery.validate(&format!("{at}.delivery")).map_err(err)?;
        let filter = EventFilter::new(d.filter.types, d.filter.allow_events, d.filter.deny_events);
        let mut settings = toml::Value::Table(d.settings);
        expand_env(&mut settings, &format!("{at}.settings"), env).map_err(err)?;
        let settings =
            serde_json::to_value(settings).map_err(|e| err(format!("{at}.settings: {e}")))?;
        destinations.push(DestinationConfig {
            name,
            kind: d.kind,
            enabled: d.enabled,
            filter,
            delivery,
            settings,
        });
    }
    Ok(Customer {
        id: parsed.id,
        write_keys: parsed.write_keys,
        destinations,
        file: file.to_owned(),
    })
}

/// The defaults with a destination's `[delivery]` overrides applied (unknown keys rejected).
fn apply_overrides(
    defaults: &DeliverySettings,
    overrides: toml::Table,
) -> Result<DeliverySettings, String> {
    // JSON, not TOML, for the merge: unset optional limits must stay known keys (null).
    let serde_json::Value::Object(mut merged) =
        serde_json::to_value(defaults).map_err(|e| e.to_string())?
    else {
        return Err("delivery settings are not a table".into());
    };
    for (key, value) in overrides {
        if !merged.contains_key(&key) {
            return Err(format!(
                "unknown field `{key}`, expected one of {}",
                merged.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        merged.insert(key, serde_json::to_value(value).map_err(|e| e.to_string())?);
    }
    serde_path_to_error::deserialize(serde_json::Value::Object(merged))
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

/// Replaces every `${NAME}` in the strings of `value` by the environment variable `NAME`.
fn expand_env(
    value: &mut toml::Value,
    at: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match value {
        toml::Value::String(s) => {
            if s.contains("${") {
                *s = expand_string(s, env).map_err(|m| format!("{at}: {m}"))?;
            }
            Ok(())
        }
        toml::Value::Array(items) => items
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, v)| expand_env(v, &format!("{at}[{i}]"), env)),
        toml::Value::Table(table) => table
            .iter_mut()
            .try_for_each(|(k, v)| expand_env(v, &format!("{at}.{k}"), env)),
        _ => Ok(()),
    }
}

fn expand_string(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated ${ in value")?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "${{{name}}} is not a valid environment variable reference"
            ));
        }
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `${VAR}` references from the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOOK_SECRET").then(|| "s3cret".to_string())
    }

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    const ACME: &str = r#"
id = "acme"
write_keys = ["wk1"]
[destinations.hook]
kind = "webhook"
enabled = true
filter = { types = ["track"], deny_events = ["Ping"] }
delivery = { batch_max_events = 1 }
[destinations.hook.settings]
url = "http://127.0.0.1/x"
secret = "pre-${HOOK_SECRET}"
"#;

    #[test]
    fn loads_expands_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "acme.toml", ACME);
        let customers = load_dir(dir.path(), &DeliverySettings::default(), &env).unwrap();
        let d = &customers[0].destinations[0];
        assert_eq!(d.settings["secret"], "pre-s3cret");
        assert_eq!(d.delivery.batch_max_events, 1);
        assert_eq!(
            d.delivery.concurrency,
            DeliverySettings::default().concurrency
        );
    }

    #[test]
    fn errors_name_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "acme.toml",
            &ACME.replace("HOOK_SECRET", "MISSING_VAR"),
        );
        let e = load_dir(dir.path(), &DeliverySettings::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("acme.toml")
                && e.contains("destinations.hook.settings.secret")
                && e.contains("MISSING_VAR"),
            "{e}"
        );

        write(
            dir.path(),
            "acme.toml",
            &ACME.replace("batch_max_events", "batch_max_eventz"),
        );
        let e = load_dir(dir.path(), &DeliverySettings::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("destinations.hook.delivery") && e.contains("batch_max_eventz"),
            "{e}"
        );

        write(
            dir.path(),
            "acme.toml",
            &ACME.replace("\"track\"", "\"click\""),
        );
        let e = load_dir(dir.path(), &DeliverySettings::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("destinations.hook.filter.types") && e.contains("click"),
            "{e}"
        );
    }

    #[test]
    fn write_keys_are_unique_across_customers() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "acme.toml", ACME);
        write(
            dir.path(),
            "globex.toml",
            &ACME.replace("\"acme\"", "\"globex\""),
        );
        let e = load_dir(dir.path(), &DeliverySettings::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("globex.toml") && e.contains("acme.toml") && !e.contains("wk1"),
            "{e}"
        );
    }
}
