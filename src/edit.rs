//! `courier destinations list|enable|disable|set`: reads and edits whichever configuration
//! store the worker configuration names — the customer files (edited in place, comments and
//! layout kept) or the PostgreSQL tables (one `UPDATE`, which notifies every worker). Running
//! workers pick the change up by themselves ([`crate::control`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use toml_edit::{value, DocumentMut, Item};

use crate::settings::{Settings, StoreKind};

/// One destination as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// The customer.
    pub customer: String,
    /// The destination's name.
    pub name: String,
    /// Its connector kind.
    pub kind: String,
    /// Whether it receives events.
    pub enabled: bool,
}

/// A change to one destination.
#[derive(Debug, Clone)]
pub enum Change {
    /// Set `enabled`.
    Enabled(bool),
    /// Set these settings keys (values parsed as TOML literals; anything else is a string).
    Settings(Vec<(String, String)>),
}

/// Lists every destination of every customer.
pub async fn list(settings: &Settings) -> anyhow::Result<Vec<Listed>> {
    match settings.control.store {
        StoreKind::Files => list_files(&settings.customers_dir),
        StoreKind::Postgres => {
            let client = pg(settings).await?;
            let rows = client
                .query(
                    "SELECT customer, name, kind, enabled FROM courier_destinations ORDER BY 1, 2",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| Listed {
                    customer: r.get(0),
                    name: r.get(1),
                    kind: r.get(2),
                    enabled: r.get(3),
                })
                .collect())
        }
    }
}

/// Applies `change` to `customer`'s destination `name`.
pub async fn apply(
    settings: &Settings,
    customer: &str,
    name: &str,
    change: &Change,
) -> anyhow::Result<()> {
    match settings.control.store {
        StoreKind::Files => {
            let file = file_of(&settings.customers_dir, customer)?;
            edit_file(&file, name, change)
        }
        StoreKind::Postgres => {
            let client = pg(settings).await?;
            let updated = match change {
                Change::Enabled(enabled) => {
                    client
                        .execute(
                            "UPDATE courier_destinations SET enabled = $3, updated_at = now() WHERE customer = $1 AND name = $2",
                            &[&customer, &name, enabled],
                        )
                        .await?
                }
                Change::Settings(pairs) => {
                    let mut patch = serde_json::Map::new();
                    for (key, raw) in pairs {
                        patch.insert(key.clone(), json_value(raw)?);
                    }
                    client
                        .execute(
                            "UPDATE courier_destinations SET settings = settings || $3, updated_at = now() WHERE customer = $1 AND name = $2",
                            &[&customer, &name, &serde_json::Value::Object(patch)],
                        )
                        .await?
                }
            };
            anyhow::ensure!(
                updated == 1,
                "customer {customer:?} has no destination {name:?} in courier_destinations"
            );
            Ok(())
        }
    }
}

async fn pg(settings: &Settings) -> anyhow::Result<tokio_postgres::Client> {
    let url = settings
        .control
        .postgres_url
        .as_deref()
        .context("control.postgres_url is not set")?;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the configuration store (control.postgres_url)")?;
    tokio::spawn(connection);
    crate::store::ensure_schema(&client).await?;
    Ok(client)
}

fn read(file: &Path) -> anyhow::Result<DocumentMut> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    text.parse::<DocumentMut>()
        .with_context(|| format!("{} is not valid TOML", file.display()))
}

fn toml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read customers directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

fn list_files(dir: &Path) -> anyhow::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for file in toml_files(dir)? {
        let doc = read(&file)?;
        let customer = doc
            .get("id")
            .and_then(Item::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(destinations) = doc.get("destinations").and_then(Item::as_table_like) else {
            continue;
        };
        for (name, d) in destinations.iter() {
            out.push(Listed {
                customer: customer.clone(),
                name: name.to_owned(),
                kind: d
                    .get("kind")
                    .and_then(Item::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                enabled: d.get("enabled").and_then(Item::as_bool).unwrap_or(false),
            });
        }
    }
    Ok(out)
}

/// The file whose `id` is `customer`.
fn file_of(dir: &Path, customer: &str) -> anyhow::Result<PathBuf> {
    for file in toml_files(dir)? {
        if read(&file)?.get("id").and_then(Item::as_str) == Some(customer) {
            return Ok(file);
        }
    }
    anyhow::bail!("no customer {customer:?} in {}", dir.display())
}

/// A TOML literal (`true`, `3`, `"x"`, `[1, 2]`), or else the text as a string.
fn parse_value(raw: &str) -> toml_edit::Value {
    raw.parse::<toml_edit::Value>()
        .unwrap_or_else(|_| toml_edit::Value::from(raw))
}

/// [`parse_value`] as JSON, for the store's `jsonb` settings.
fn json_value(raw: &str) -> anyhow::Result<serde_json::Value> {
    let literal = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    Ok(match literal {
        Some(v) => serde_json::to_value(v)?,
        None => serde_json::Value::String(raw.to_owned()),
    })
}

fn edit_file(file: &Path, name: &str, change: &Change) -> anyhow::Result<()> {
    let mut doc = read(file)?;
    let destination = doc
        .get_mut("destinations")
        .and_then(|d| d.get_mut(name))
        .and_then(Item::as_table_like_mut)
        .with_context(|| format!("{} has no destination {name:?}", file.display()))?;
    match change {
        Change::Enabled(enabled) => {
            destination.insert("enabled", value(*enabled));
        }
        Change::Settings(pairs) => {
            if destination.get("settings").is_none() {
                destination.insert("settings", Item::Table(toml_edit::Table::new()));
            }
            let settings = destination
                .get_mut("settings")
                .and_then(Item::as_table_like_mut)
                .context("settings is not a table")?;
            for (key, raw) in pairs {
                settings.insert(key, Item::Value(parse_value(raw)));
            }
        }
    }
    // Written whole to a temporary file and renamed, so a worker never reads half a file.
    let tmp = file.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot replace {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acme.toml");
        std::fs::write(
            &file,
            "# acme\nid = \"acme\"\nwrite_keys = [\"k\"]\n\n[destinations.hook]\nkind = \"webhook\"\nenabled = true # on\n[destinations.hook.settings]\nurl = \"http://x\"\n",
        )
        .unwrap();
        edit_file(&file, "hook", &Change::Enabled(false)).unwrap();
        edit_file(
            &file,
            "hook",
            &Change::Settings(vec![
                ("timeout_ms".into(), "2500".into()),
                ("url".into(), "http://y".into()),
            ]),
        )
        .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# acme\n"), "{text}");
        assert!(text.contains("enabled = false"), "{text}");
        assert!(text.contains("timeout_ms = 2500"), "{text}");
        assert!(text.contains("url = \"http://y\""), "{text}");
        let listed = list_files(dir.path()).unwrap();
        assert_eq!(
            listed,
            vec![Listed {
                customer: "acme".into(),
                name: "hook".into(),
                kind: "webhook".into(),
                enabled: false
            }]
        );
        assert!(edit_file(&file, "nope", &Change::Enabled(true)).is_err());
        assert!(file_of(dir.path(), "globex").is_err());
    }
}
