//! Load files: rows of one table as CSV with an explicit column order.
//!
//! Every value is quoted (inner `"` doubled) and NULL is an unquoted empty field, which is what
//! PostgreSQL's `COPY ... (FORMAT csv)` and Redshift's `COPY ... CSV EMPTYASNULL` read back.
//! NUL characters, which neither database stores in text, are dropped.

use std::sync::Arc;

use super::rows::Row;

/// Appends `rows` as CSV lines with the cells of `columns`, in that order.
pub fn write_rows<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    columns: &[Arc<str>],
    out: &mut Vec<u8>,
) {
    // Sorted columns (the loader's) walk each row's cells, also sorted, side by side instead of
    // looking every cell up.
    let sorted = columns.is_sorted();
    for row in rows {
        let mut cells = row.columns.iter().peekable();
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let value = if sorted {
                while cells.next_if(|(name, _)| *name < column).is_some() {}
                cells.next_if(|(name, _)| *name == column).map(|(_, v)| v)
            } else {
                row.columns.get(&**column)
            };
            write_cell(value.and_then(|v| v.text.as_deref()), out);
        }
        out.push(b'\n');
    }
}

/// One field: quoted text, or nothing for NULL.
fn write_cell(text: Option<&str>, out: &mut Vec<u8>) {
    let Some(text) = text else {
        return;
    };
    out.push(b'"');
    let mut rest = text.as_bytes();
    while let Some(i) = memchr::memchr2(b'"', 0, rest) {
        out.extend_from_slice(&rest[..i]);
        if rest[i] == b'"' {
            out.extend_from_slice(b"\"\"");
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
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
            text: t.map(Arc::from),
        };
        let row = Row {
            table: "t".into(),
            columns: BTreeMap::from([
                ("a".into(), cell(Some("say \"hi\", ok\nbye"))),
                ("b".into(), cell(None)),
                ("c".into(), cell(Some("nul\0byte"))),
            ]),
        };
        let mut out = Vec::new();
        let columns = ["c", "b", "a", "missing"].map(Arc::from);
        write_rows([&row], &columns, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"nulbyte\",,\"say \"\"hi\"\", ok\nbye\",\n"
        );
        // Sorted columns take the side-by-side walk: same fields, in column order.
        let mut sorted = Vec::new();
        let columns = ["a", "aa", "b", "c", "d"].map(Arc::from);
        write_rows([&row, &row], &columns, &mut sorted);
        let line = "\"say \"\"hi\"\", ok\nbye\",,,\"nulbyte\",\n";
        assert_eq!(String::from_utf8(sorted).unwrap(), format!("{line}{line}"));
    }
}
