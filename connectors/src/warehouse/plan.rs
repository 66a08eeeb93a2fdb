//! Fitting a batch's rows to the tables as they exist: new columns to add, and values whose
//! type does not fit their column.
//!
//! Types never change once a column exists (the warehouse is shared with the customer's own
//! queries). A value that does not fit its column's type goes into a text column named
//! `<column>_text` instead, added when needed, so nothing is lost and nothing is retyped.
//! Compatible without moving: the same type, anything into text, an integer into a double, and
//! NULL into anything.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use super::identifier::sanitize;
use super::rows::{ColumnType, Dialect, Row};

/// One table's part of a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    /// The table.
    pub table: String,
    /// Every column the rows use, with its type (existing columns keep theirs).
    pub columns: BTreeMap<Arc<str>, ColumnType>,
    /// Columns to add before loading.
    pub new_columns: BTreeMap<Arc<str>, ColumnType>,
    /// The rows, with misfitting values moved to their `_text` columns.
    pub rows: Vec<Row>,
}

/// Whether a value of type `value` can be loaded into a column of type `column`.
pub fn fits(column: ColumnType, value: ColumnType) -> bool {
    column == value
        || column == ColumnType::Text
        || (column == ColumnType::Double && value == ColumnType::BigInt)
}

/// One row per `id`, later rows' non-NULL cells over earlier ones (rows in delivery order):
/// how identifies merge into the `users` table.
pub fn merge_by_id(rows: Vec<Row>) -> Vec<Row> {
    let mut merged: BTreeMap<Option<Arc<str>>, Row> = BTreeMap::new();
    for row in rows {
        let id = row.columns.get("id").and_then(|v| v.text.clone());
        match merged.get_mut(&id) {
            Some(existing) => {
                for (column, value) in row.columns {
                    if value.text.is_some() {
                        existing.columns.insert(column, value);
                    }
                }
            }
            None => {
                merged.insert(id, row);
            }
        }
    }
    merged.into_values().collect()
}

/// Plans loading `rows` (all of one table) into a table whose columns are `existing`.
pub fn plan<S: BuildHasher>(
    table: &str,
    rows: Vec<Row>,
    existing: &HashMap<String, ColumnType, S>,
    dialect: Dialect,
) -> TablePlan {
    // Columns of this batch by name (first type seen wins), looked up for every cell.
    let mut seen: foldhash::HashMap<Arc<str>, ColumnType> = foldhash::HashMap::default();
    let mut planned = Vec::with_capacity(rows.len());
    // Cells of the current row that move to another column: (from, to).
    let mut moves: Vec<(Arc<str>, Arc<str>)> = Vec::new();
    for mut row in rows {
        for (name, value) in &row.columns {
            // `seen` agrees with `existing` on every column both hold, so it is asked first:
            // after a table's first row most cells are found there, in one lookup.
            let seen_type = seen.get(&**name).copied();
            let fitting = match seen_type.or_else(|| existing.get(&**name).copied()) {
                None => Some(value.column_type),
                Some(t) if value.text.is_none() || fits(t, value.column_type) => Some(t),
                Some(_) => None,
            };
            if let Some(t) = fitting {
                if seen_type.is_none() {
                    seen.insert(name.clone(), t);
                }
                continue;
            }
            let text_name: Arc<str> =
                sanitize(&format!("{name}_text"), dialect.max_identifier()).into();
            let t = seen
                .get(&*text_name)
                .or_else(|| existing.get(&*text_name))
                .copied()
                .unwrap_or(ColumnType::Text);
            seen.entry(text_name.clone()).or_insert(t);
            moves.push((name.clone(), text_name));
        }
        for (from, to) in moves.drain(..) {
            if let Some(value) = row.columns.remove(&from) {
                row.columns.insert(to, value);
            }
        }
        planned.push(row);
    }
    let columns: BTreeMap<Arc<str>, ColumnType> = seen.into_iter().collect();
    let new_columns = columns
        .iter()
        .filter(|(name, _)| !existing.contains_key(&***name))
        .map(|(name, t)| (name.clone(), *t))
        .collect();
    TablePlan {
        table: table.to_owned(),
        columns,
        new_columns,
        rows: planned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::rows::Value;

    fn row(cells: &[(&str, ColumnType, Option<&str>)]) -> Row {
        Row {
            table: "t".into(),
            columns: cells
                .iter()
                .map(|(n, t, v)| {
                    (
                        Arc::from(*n),
                        Value {
                            column_type: *t,
                            text: v.map(Arc::from),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn users_merge_later_traits_over_earlier_ones() {
        let rows = vec![
            row(&[
                ("id", ColumnType::Text, Some("u1")),
                ("email", ColumnType::Text, Some("a@b.c")),
                ("plan", ColumnType::Text, Some("free")),
            ]),
            row(&[
                ("id", ColumnType::Text, Some("u2")),
                ("plan", ColumnType::Text, Some("free")),
            ]),
            row(&[
                ("id", ColumnType::Text, Some("u1")),
                ("plan", ColumnType::Text, Some("pro")),
                ("email", ColumnType::Text, None),
            ]),
        ];
        let merged = merge_by_id(rows);
        assert_eq!(merged.len(), 2);
        let u1 = &merged[0];
        assert_eq!(
            u1.columns["email"].text.as_deref(),
            Some("a@b.c"),
            "a NULL does not erase a trait"
        );
        assert_eq!(
            u1.columns["plan"].text.as_deref(),
            Some("pro"),
            "the later value wins"
        );
    }

    #[test]
    fn existing_types_win_and_misfits_move_to_text_columns() {
        let existing = HashMap::from([
            ("id".to_owned(), ColumnType::Text),
            ("price".to_owned(), ColumnType::Double),
        ]);
        let rows = vec![
            row(&[
                ("id", ColumnType::Text, Some("1")),
                ("price", ColumnType::BigInt, Some("3")),
                ("plan", ColumnType::Text, Some("pro")),
            ]),
            row(&[
                ("id", ColumnType::Text, Some("2")),
                ("price", ColumnType::Text, Some("free")),
                ("plan", ColumnType::Boolean, Some("true")),
            ]),
            row(&[
                ("id", ColumnType::Text, Some("3")),
                ("price", ColumnType::Boolean, None),
            ]),
        ];
        let p = plan("t", rows, &existing, Dialect::Postgres);
        assert_eq!(
            p.new_columns,
            BTreeMap::from([
                (Arc::from("plan"), ColumnType::Text),
                (Arc::from("price_text"), ColumnType::Text)
            ])
        );
        assert_eq!(
            p.rows[0].columns["price"].text.as_deref(),
            Some("3"),
            "an integer fits a double column"
        );
        assert_eq!(
            p.rows[1].columns["price_text"].text.as_deref(),
            Some("free")
        );
        assert!(!p.rows[1].columns.contains_key("price"));
        assert_eq!(
            p.rows[1].columns["plan"].text.as_deref(),
            Some("true"),
            "a boolean fits the text column"
        );
        assert!(
            p.rows[2].columns.contains_key("price"),
            "NULL fits anything"
        );
    }
}
