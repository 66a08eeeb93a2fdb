//! Making names from events safe as SQL identifiers.
//!
//! Invariants of [`sanitize`]'s output: non-empty; only `a-z`, `0-9` and `_`; does not start
//! with a digit; at most the given length; not a reserved word of PostgreSQL or Redshift. Two
//! different inputs may sanitise to the same name (`Order Completed` and `order-completed`):
//! they then share a column or table, as in Segment's warehouses.

/// Words PostgreSQL or Redshift reserve (a name equal to one gets a trailing `_`).
const RESERVED: &[&str] = &[
    "aes128",
    "aes256",
    "all",
    "allowoverwrite",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "authorization",
    "backup",
    "between",
    "binary",
    "blanksasnull",
    "both",
    "bytedict",
    "bzip2",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "concurrently",
    "constraint",
    "create",
    "credentials",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "current_user_id",
    "default",
    "deferrable",
    "deflate",
    "defrag",
    "delta",
    "delta32k",
    "desc",
    "disable",
    "distinct",
    "do",
    "else",
    "emptyasnull",
    "enable",
    "encode",
    "encrypt",
    "encryption",
    "end",
    "except",
    "explicit",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "globaldict256",
    "globaldict64k",
    "grant",
    "group",
    "gzip",
    "having",
    "identity",
    "ignore",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "lun",
    "luns",
    "lzo",
    "lzop",
    "minus",
    "mostly13",
    "mostly32",
    "mostly8",
    "natural",
    "new",
    "not",
    "notnull",
    "null",
    "nulls",
    "off",
    "offline",
    "offset",
    "oid",
    "old",
    "on",
    "only",
    "open",
    "or",
    "order",
    "outer",
    "overlaps",
    "parallel",
    "partition",
    "percent",
    "permissions",
    "pivot",
    "placing",
    "primary",
    "raw",
    "readratio",
    "recover",
    "references",
    "rejectlog",
    "resort",
    "respect",
    "restore",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "snapshot",
    "some",
    "symmetric",
    "sysdate",
    "system",
    "table",
    "tablesample",
    "tag",
    "tdes",
    "text255",
    "text32k",
    "then",
    "timestamp",
    "to",
    "top",
    "trailing",
    "true",
    "truncatecolumns",
    "union",
    "unique",
    "unnest",
    "unpivot",
    "user",
    "using",
    "variadic",
    "verbose",
    "wallet",
    "when",
    "where",
    "window",
    "with",
    "without",
];

/// A safe identifier for `name`, at most `max_len` bytes (Redshift allows 127, PostgreSQL 63).
pub fn sanitize(name: &str, max_len: usize) -> String {
    let mut out = String::with_capacity(name.len().min(max_len));
    let mut last_underscore = false;
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if c == '_' {
            if last_underscore {
                continue;
            }
            last_underscore = true;
        } else {
            last_underscore = false;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches('_');
    let mut out = if trimmed.is_empty() {
        "_".to_owned()
    } else if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    };
    if RESERVED.binary_search(&out.as_str()).is_ok() {
        out.push('_');
    }
    // ASCII only by now, so any byte index is a character boundary.
    out.truncate(max_len.max(1));
    out
}

/// `ident` quoted as a SQL identifier (inner `"` doubled).
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_words_are_sorted_for_binary_search() {
        let mut sorted = RESERVED.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, RESERVED);
    }

    #[test]
    fn sanitizes_hostile_names() {
        assert_eq!(sanitize("Order Completed", 127), "order_completed");
        assert_eq!(
            sanitize("\"; DROP TABLE users; --", 127),
            "drop_table_users"
        );
        assert_eq!(sanitize("it's \"quoted\"", 127), "it_s_quoted");
        assert_eq!(sanitize("Größe €", 127), "gr_e");
        assert_eq!(sanitize("42 answers", 127), "_42_answers");
        assert_eq!(sanitize("   ", 127), "_");
        assert_eq!(sanitize("select", 127), "select_");
        assert_eq!(sanitize("Timestamp", 127), "timestamp_");
        assert_eq!(sanitize(&"x".repeat(300), 127).len(), 127);
        assert_eq!(sanitize(&"é".repeat(300), 63), "_");
        for hostile in ["a\"b", "a;b", "a b", "a\u{0}b", "ä'b", "DROP TABLE"] {
            let s = sanitize(hostile, 63);
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{s}"
            );
        }
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote("tracks"), "\"tracks\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
