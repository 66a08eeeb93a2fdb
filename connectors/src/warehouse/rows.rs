//! A Segment event → the warehouse rows it becomes (see the module above for the layout).
//!
//! Pure: no I/O, no SQL. Every table and column name here went through
//! [`super::sanitize`]; every value is text for a load file (or `None` for NULL).
//!
//! Names and texts are shared `Arc<str>`s: a batch's builder makes each distinct name once and
//! every cell of that column points at it, and a track's standard cells are shared by its
//! `tracks` row and its own table's row. A cell allocates nothing for its name.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value as Json};

use super::identifier::sanitize;
use crate::event::{Event, EventType};

/// The SQL dialect rows are shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: identifiers up to 63 bytes.
    Postgres,
    /// Redshift: identifiers up to 127 bytes, `varchar(65535)` for text.
    Redshift,
}

impl Dialect {
    /// The longest identifier.
    pub fn max_identifier(self) -> usize {
        match self {
            Dialect::Postgres => 63,
            Dialect::Redshift => 127,
        }
    }
}

/// A column's type, inferred from the first value seen for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColumnType {
    /// JSON true/false.
    Boolean,
    /// JSON integers that fit 64 bits.
    BigInt,
    /// Other JSON numbers.
    Double,
    /// Strings that are RFC 3339 timestamps.
    Timestamp,
    /// Everything else (strings, arrays as JSON).
    Text,
}

impl ColumnType {
    /// The type's name in `dialect`.
    pub fn sql(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (ColumnType::Boolean, _) => "boolean",
            (ColumnType::BigInt, _) => "bigint",
            (ColumnType::Double, _) => "double precision",
            (ColumnType::Timestamp, _) => "timestamptz",
            (ColumnType::Text, Dialect::Postgres) => "text",
            (ColumnType::Text, Dialect::Redshift) => "varchar(65535)",
        }
    }
}

/// One cell: its inferred type and its text for a load file (`None`: NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The type the value suggests for its column.
    pub column_type: ColumnType,
    /// The value as load-file text.
    pub text: Option<Arc<str>>,
}

/// One row for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The (sanitised) table name.
    pub table: Arc<str>,
    /// Cells by (sanitised) column name.
    pub columns: BTreeMap<Arc<str>, Value>,
}

/// The standard tables; an event table that would clash with one gets `_event` appended.
pub const STANDARD_TABLES: [&str; 7] = [
    "aliases",
    "groups",
    "identifies",
    "pages",
    "screens",
    "tracks",
    "users",
];

fn timestamp_text(s: &str) -> Option<Arc<str>> {
    let t = DateTime::parse_from_rfc3339(s).ok()?;
    Some(
        t.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
            .into(),
    )
}

fn cell(v: &Json) -> Value {
    let (column_type, text) = match v {
        Json::Null => (ColumnType::Text, None),
        Json::Bool(b) => (ColumnType::Boolean, Some(b.to_string().into())),
        Json::Number(n) if n.is_i64() => (ColumnType::BigInt, Some(n.to_string().into())),
        Json::Number(n) => (ColumnType::Double, Some(n.to_string().into())),
        Json::String(s) => match timestamp_text(s) {
            Some(t) => (ColumnType::Timestamp, Some(t)),
            None => (ColumnType::Text, Some(s.as_str().into())),
        },
        other => (ColumnType::Text, Some(other.to_string().into())),
    };
    Value { column_type, text }
}

/// Turns events into rows, applying the naming rules of one dialect; one builder serves a
/// whole batch, so each distinct raw name is sanitised and allocated once.
#[derive(Debug)]
pub struct RowBuilder {
    max: usize,
    received_at: Arc<str>,
    /// Raw names (event names, property paths) → sanitised names.
    names: RefCell<foldhash::HashMap<String, Arc<str>>>,
    /// The layout's own names (standard columns and tables), used as they are.
    fixed: RefCell<foldhash::HashMap<&'static str, Arc<str>>>,
}

impl RowBuilder {
    /// A builder for rows received at `received_at_ms`, shaped for `dialect`.
    pub fn new(received_at_ms: i64, dialect: Dialect) -> RowBuilder {
        RowBuilder {
            max: dialect.max_identifier(),
            received_at: DateTime::<Utc>::from_timestamp_millis(received_at_ms)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Millis, true)
                .into(),
            names: RefCell::default(),
            fixed: RefCell::default(),
        }
    }

    /// The rows `event` becomes (see [`rows`]).
    pub fn rows(&self, event: &Event) -> Vec<Row> {
        let mut object: Map<String, Json> = match serde_json::from_slice(event.raw()) {
            Ok(Json::Object(map)) => map,
            _ => Map::new(),
        };
        let standard = self.standard(event, &object);
        let text = |v: Option<&str>| Value {
            column_type: ColumnType::Text,
            text: v.map(Arc::from),
        };
        let row = |table: Arc<str>, columns| Row { table, columns };
        match event.event_type() {
            EventType::Track => {
                let name = event.name().unwrap_or_default();
                let mut table = self.name(name);
                if STANDARD_TABLES.contains(&&*table) {
                    table = self.name(&format!("{table}_event"));
                }
                let event_column = Value {
                    column_type: ColumnType::Text,
                    text: Some(table.clone()),
                };
                let event_text = text(Some(name));
                let mut tracks = standard.clone();
                tracks.insert(self.fixed("event"), event_column.clone());
                tracks.insert(self.fixed("event_text"), event_text.clone());
                let mut own = standard;
                own.insert(self.fixed("event"), event_column);
                own.insert(self.fixed("event_text"), event_text);
                self.flatten(&mut own, "", &fields(&mut object, "properties"));
                vec![row(self.fixed("tracks"), tracks), row(table, own)]
            }
            EventType::Identify => {
                let traits = fields(&mut object, "traits");
                let mut identifies = standard;
                self.flatten(&mut identifies, "", &traits);
                let mut rows = vec![row(self.fixed("identifies"), identifies)];
                if let Some(user) = event_user(&object) {
                    let mut users = BTreeMap::new();
                    users.insert(self.fixed("id"), text(Some(&user)));
                    users.insert(
                        self.fixed("received_at"),
                        Value {
                            column_type: ColumnType::Timestamp,
                            text: Some(self.received_at.clone()),
                        },
                    );
                    self.flatten(&mut users, "", &traits);
                    rows.push(row(self.fixed("users"), users));
                }
                rows
            }
            EventType::Page | EventType::Screen => {
                let table = if event.event_type() == EventType::Page {
                    "pages"
                } else {
                    "screens"
                };
                let mut columns = standard;
                columns.insert(self.fixed("name"), text(event.name()));
                self.flatten(&mut columns, "", &fields(&mut object, "properties"));
                vec![row(self.fixed(table), columns)]
            }
            EventType::Group => {
                let mut columns = standard;
                let group = object.get("groupId").map(|g| match g {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                });
                columns.insert(self.fixed("group_id"), text(group.as_deref()));
                self.flatten(&mut columns, "", &fields(&mut object, "traits"));
                vec![row(self.fixed("groups"), columns)]
            }
            EventType::Alias => {
                let mut columns = standard;
                let previous = object.get("previousId").and_then(Json::as_str);
                columns.insert(self.fixed("previous_id"), text(previous));
                vec![row(self.fixed("aliases"), columns)]
            }
        }
    }

    /// `raw` sanitised, from the batch's cache when seen before.
    fn name(&self, raw: &str) -> Arc<str> {
        if let Some(name) = self.names.borrow().get(raw) {
            return name.clone();
        }
        let name: Arc<str> = sanitize(raw, self.max).into();
        self.names.borrow_mut().insert(raw.to_owned(), name.clone());
        name
    }

    /// One of the layout's own names (already safe), shared by every row of the batch.
    fn fixed(&self, name: &'static str) -> Arc<str> {
        self.fixed
            .borrow_mut()
            .entry(name)
            .or_insert_with(|| name.into())
            .clone()
    }

    /// Adds the fields of `object` (flattened, keys joined with `_` after `prefix`) without
    /// replacing columns already there: a clashing field gets `_prop` appended.
    fn flatten(
        &self,
        columns: &mut BTreeMap<Arc<str>, Value>,
        prefix: &str,
        object: &Map<String, Json>,
    ) {
        let mut path = String::with_capacity(64);
        path.push_str(prefix);
        self.flatten_at(columns, &mut path, object);
    }

    /// [`Self::flatten`] below the raw path `path` (restored on return).
    fn flatten_at(
        &self,
        columns: &mut BTreeMap<Arc<str>, Value>,
        path: &mut String,
        object: &Map<String, Json>,
    ) {
        for (key, value) in object {
            let len = path.len();
            if len > 0 {
                path.push('_');
            }
            path.push_str(key);
            match value {
                Json::Object(inner) => self.flatten_at(columns, path, inner),
                _ => {
                    let mut column = self.name(path);
                    if columns.contains_key(&column) {
                        column = self.name(&format!("{column}_prop"));
                    }
                    columns.entry(column).or_insert_with(|| cell(value));
                }
            }
            path.truncate(len);
        }
    }

    fn standard(&self, event: &Event, object: &Map<String, Json>) -> BTreeMap<Arc<str>, Value> {
        let mut columns = BTreeMap::new();
        columns.insert(
            self.fixed("id"),
            Value {
                column_type: ColumnType::Text,
                text: Some(event.message_id().into()),
            },
        );
        columns.insert(
            self.fixed("received_at"),
            Value {
                column_type: ColumnType::Timestamp,
                text: Some(self.received_at.clone()),
            },
        );
        for (field, column) in [
            ("sentAt", "sent_at"),
            ("timestamp", "timestamp"),
            ("originalTimestamp", "original_timestamp"),
            ("userId", "user_id"),
            ("anonymousId", "anonymous_id"),
        ] {
            let mut v = cell(object.get(field).unwrap_or(&Json::Null));
            if field.ends_with("Id") {
                // Ids are text even when a library sent a number.
                v.column_type = ColumnType::Text;
            } else if v.column_type != ColumnType::Timestamp {
                v = Value {
                    column_type: ColumnType::Timestamp,
                    text: None,
                };
            }
            columns.insert(self.fixed(column), v);
        }
        if let Some(Json::Object(context)) = object.get("context") {
            self.flatten(&mut columns, "context", context);
        }
        columns
    }
}

/// Takes the object at `key` out of the event (it is flattened once, so no copy is needed).
fn fields(object: &mut Map<String, Json>, key: &str) -> Map<String, Json> {
    match object.remove(key) {
        Some(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The rows `event` becomes, received at `received_at` (unix milliseconds).
pub fn rows(event: &Event, received_at_ms: i64, dialect: Dialect) -> Vec<Row> {
    RowBuilder::new(received_at_ms, dialect).rows(event)
}

fn event_user(object: &Map<String, Json>) -> Option<String> {
    match object.get("userId")? {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn parse(raw: &str) -> Event {
        Event::parse(Bytes::from(raw.to_owned()), 1 << 20).unwrap()
    }

    fn text(row: &Row, column: &str) -> Option<String> {
        row.columns
            .get(column)
            .and_then(|v| v.text.as_deref().map(str::to_owned))
    }

    #[test]
    fn a_track_is_a_tracks_row_and_an_event_table_row() {
        let e = parse(
            r#"{"type":"track","event":"Order Completed","messageId":"m1","writeKey":"k","userId":"u1","timestamp":"2026-11-29T11:00:00+01:00","context":{"page":{"path":"/cart"}},"properties":{"total":30.5,"items":3,"gift":false,"address":{"city":"Lyon"},"tags":["a","b"],"id":"prop-id"}}"#,
        );
        let rows = rows(&e, 0, Dialect::Postgres);
        assert_eq!(
            rows.iter().map(|r| &*r.table).collect::<Vec<_>>(),
            ["tracks", "order_completed"]
        );
        let own = &rows[1];
        assert_eq!(text(own, "id").as_deref(), Some("m1"));
        assert_eq!(
            text(own, "timestamp").as_deref(),
            Some("2026-11-29T10:00:00.000Z")
        );
        assert_eq!(text(own, "context_page_path").as_deref(), Some("/cart"));
        assert_eq!(own.columns["total"].column_type, ColumnType::Double);
        assert_eq!(own.columns["items"].column_type, ColumnType::BigInt);
        assert_eq!(own.columns["gift"].column_type, ColumnType::Boolean);
        assert_eq!(text(own, "address_city").as_deref(), Some("Lyon"));
        assert_eq!(text(own, "tags").as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(
            text(own, "id_prop").as_deref(),
            Some("prop-id"),
            "a property never replaces a standard column"
        );
        assert!(
            !rows[0].columns.contains_key("total"),
            "tracks holds no properties"
        );
        assert_eq!(
            text(&rows[0], "event_text").as_deref(),
            Some("Order Completed")
        );
    }

    #[test]
    fn hostile_names_become_safe_tables_and_columns() {
        let name = format!("\\\"; DROP TABLE tracks; -- {}", "é".repeat(300));
        let raw = serde_json::json!({
            "type": "track", "event": name, "messageId": "m", "writeKey": "k", "userId": "u",
            "properties": {"select": 1, "a\"b;c": 2, "Ünïcödé key": 3, "tracks": 4}
        });
        let e = parse(&raw.to_string());
        for row in rows(&e, 0, Dialect::Redshift) {
            for name in std::iter::once(&row.table).chain(row.columns.keys()) {
                assert!(
                    name.len() <= 127
                        && name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{name}"
                );
            }
        }
        let own = rows(&e, 0, Dialect::Postgres).pop().unwrap();
        assert_eq!(&*own.table, "drop_table_tracks");
        assert!(own.columns.contains_key("select_") && own.columns.contains_key("a_b_c"));
        let clash = parse(
            r#"{"type":"track","event":"Tracks","messageId":"m","writeKey":"k","userId":"u"}"#,
        );
        assert_eq!(
            &*rows(&clash, 0, Dialect::Postgres)[1].table,
            "tracks_event"
        );
    }

    #[test]
    fn identify_page_group_alias() {
        let id = parse(
            r#"{"type":"identify","messageId":"m","writeKey":"k","userId":"u1","traits":{"email":"a@b.c","plan":"pro"}}"#,
        );
        let r = rows(&id, 1_000, Dialect::Postgres);
        assert_eq!(&*r[0].table, "identifies");
        assert_eq!(&*r[1].table, "users");
        assert_eq!(text(&r[1], "id").as_deref(), Some("u1"));
        assert_eq!(
            text(&r[1], "received_at").as_deref(),
            Some("1970-01-01T00:00:01.000Z")
        );
        let page = parse(
            r#"{"type":"page","name":"Pricing","messageId":"m","writeKey":"k","anonymousId":"a"}"#,
        );
        assert_eq!(
            text(&rows(&page, 0, Dialect::Postgres)[0], "name").as_deref(),
            Some("Pricing")
        );
        let group =
            parse(r#"{"type":"group","groupId":42,"messageId":"m","writeKey":"k","userId":"u"}"#);
        assert_eq!(
            text(&rows(&group, 0, Dialect::Postgres)[0], "group_id").as_deref(),
            Some("42")
        );
        let alias = parse(
            r#"{"type":"alias","previousId":"a","messageId":"m","writeKey":"k","userId":"u"}"#,
        );
        assert_eq!(
            text(&rows(&alias, 0, Dialect::Postgres)[0], "previous_id").as_deref(),
            Some("a")
        );
    }
}
