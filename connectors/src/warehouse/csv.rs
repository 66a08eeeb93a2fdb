//! Load files: rows of one table as CSV with an explicit column order.
//!
//! Every value is quoted (inner `"` doubled) and NULL is an unquoted empty field, which is what
//! PostgreSQL's `COPY ... (FORMAT csv)` and Redshift's `COPY ... CSV EMPTYASNULL` read back.
//! NUL characters, which neither database stores in text, are dropped.

use super::rows::Row;

/// Appends `rows` as CSV lines with the cells of `columns`, in that order.
pub fn write_rows<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    columns: &[String],
    out: &mut Vec<u8>,
) {
    for row in rows {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if let Some(text) = row.columns.get(column).and_then(|v| v.text.as_deref()) {
                out.push(b'"');
                for b in text.bytes() {
                    match b {
                        b'"' => out.extend_from_slice(b"\"\""),
                        0 => {}
                        _ => out.push(b),
                    }
                }
                out.push(b'"');
            }
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::warehouse::rows::{ColumnType, Value};

    #[test]
    fn quotes_values_and_leaves_nulls_empty() {
        let cell = |t: Option<&str>| Value {
            column_type: ColumnType::Text,
            text: t.map(str::to_owned),
        };
        let row = Row {
            table: "t".into(),
            columns: BTreeMap::from([
                ("a".to_owned(), cell(Some("say \"hi\", ok\nbye"))),
                ("b".to_owned(), cell(None)),
                ("c".to_owned(), cell(Some("nul\0byte"))),
            ]),
        };
        let mut out = Vec::new();
        let columns = ["c", "b", "a", "missing"].map(String::from);
        write_rows([&row], &columns, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"nulbyte\",,\"say \"\"hi\"\", ok\nbye\",\n"
        );
    }
}
