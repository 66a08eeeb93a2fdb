//! A Redshift-compatible front for the `redshift` connector, for the tests and the demo (no
//! Redshift runs on one machine; this is the one stand-in for it): a PostgreSQL wire-protocol
//! proxy that forwards every message to a real PostgreSQL, except a simple-query
//! `COPY <table> [(<columns>)] FROM 's3://bucket/key' <options>`, which it executes itself:
//! it reads the manifest (with `MANIFEST`) or lists the key prefix (without), fetches each file
//! from the S3 server, gunzips it (with `GZIP`), and streams the bytes into
//! `COPY <table> [(<columns>)] FROM STDIN` on the same backend connection — inside the client's
//! transaction, so a rollback undoes it like Redshift's. A missing mandatory manifest entry, a
//! missing manifest or an empty prefix fails the statement (the backend aborts the `COPY`
//! with the reason, and the transaction with it).
//!
//! Honoured: `MANIFEST` (entries' `url` and `mandatory`), `CSV` (otherwise Redshift's default,
//! pipe-delimited text), `GZIP`, the column list, `EMPTYASNULL` (quoted empty CSV fields load as
//! NULL, via `FORCE_NULL`). Ignored: `CREDENTIALS` / `IAM_ROLE` (the front reads with its own
//! keys), `REGION`, `TIMEFORMAT 'auto'` (PostgreSQL already reads ISO 8601), `ACCEPTINVCHARS`
//! (load files are valid UTF-8), `TRUNCATECOLUMNS` (over-long values fail instead of being
//! cut), `COMPUPDATE`, `STATUPDATE`. Everything else — DDL, `LOCK`, `DELETE ... USING`,
//! `ROW_NUMBER()` — is PostgreSQL's own behaviour, which for these statements matches Redshift's.
//!
//! Startup: SSL and GSS encryption requests are declined (`N`); authentication passes through.
//!
//! Known differences from Redshift: PostgreSQL truncates identifiers at 63 bytes where Redshift
//! allows 127 (names longer than 63 bytes, which only 64+ byte event names or keys produce,
//! load into truncated columns and a second such load fails), and `varchar(65535)` counts
//! characters rather than bytes.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use courier_connectors::s3::{Bucket, S3Location};
use flate2::read::MultiGzDecoder;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const SSL_REQUEST: i32 = 80_877_103;
const GSS_REQUEST: i32 = 80_877_104;

/// A running front; stops accepting when dropped.
#[derive(Debug)]
pub struct RedshiftFront {
    /// Its loopback port.
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for RedshiftFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedshiftFront {
    /// Listens on `listen` (port 0 picks one), forwarding to the PostgreSQL at `backend` (`host:port`) and
    /// reading S3 through `s3` (its `bucket` is replaced by each `COPY`'s).
    pub async fn start(
        listen: &str,
        backend: &str,
        s3: S3Location,
    ) -> std::io::Result<RedshiftFront> {
        let listener = TcpListener::bind(listen).await?;
        let port = listener.local_addr()?.port();
        let backend = backend.to_owned();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (backend, s3) = (backend.clone(), s3.clone());
                connections.spawn(async move {
                    if let Err(err) = serve(client, &backend, s3).await {
                        tracing::debug!(error = %err, "redshift front: connection ended");
                    }
                });
            }
        });
        Ok(RedshiftFront { port, task })
    }

    /// `pg_url` (a URL of the PostgreSQL on 127.0.0.1:5432) pointed at the front instead.
    pub fn url(&self, pg_url: &str) -> String {
        pg_url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", self.port))
    }
}

async fn serve(client: TcpStream, backend: &str, s3: S3Location) -> std::io::Result<()> {
    let server = TcpStream::connect(backend).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut from_client = BufReader::with_capacity(64 * 1024, client_read);
    let mut to_client = BufWriter::with_capacity(64 * 1024, client_write);
    let mut to_server = BufWriter::with_capacity(64 * 1024, server_write);
    // Startup packets have no tag: decline encryption, forward the startup message.
    loop {
        let len = from_client.read_i32().await?;
        let mut body = vec![0; (len as usize).saturating_sub(4)];
        from_client.read_exact(&mut body).await?;
        let code = i32::from_be_bytes(body[..4].try_into().unwrap_or_default());
        if code == SSL_REQUEST || code == GSS_REQUEST {
            to_client.write_all(b"N").await?;
            to_client.flush().await?;
            continue;
        }
        to_server.write_i32(len).await?;
        to_server.write_all(&body).await?;
        to_server.flush().await?;
        break;
    }
    let swallow_copy_in = Arc::new(AtomicBool::new(false));
    let pump = tokio::spawn(pump(
        BufReader::with_capacity(64 * 1024, server_read),
        to_client,
        swallow_copy_in.clone(),
    ));
    let result = async {
        while let Some((tag, body)) = read_message(&mut from_client).await? {
            let copy = (tag == b'Q')
                .then(|| std::str::from_utf8(body.strip_suffix(&[0]).unwrap_or(&body)).ok())
                .flatten()
                .and_then(S3Copy::parse);
            match copy {
                Some(copy) => {
                    let data = copy.fetch(&s3).await;
                    swallow_copy_in.store(true, Ordering::SeqCst);
                    write_message(&mut to_server, b'Q', &cstring(&copy.stdin_statement())).await?;
                    match data {
                        Ok(bytes) => {
                            for chunk in bytes.chunks(64 * 1024) {
                                write_message(&mut to_server, b'd', chunk).await?;
                            }
                            write_message(&mut to_server, b'c', &[]).await?;
                        }
                        Err(reason) => {
                            write_message(&mut to_server, b'f', &cstring(&reason)).await?
                        }
                    }
                }
                None => write_message(&mut to_server, tag, &body).await?,
            }
            if from_client.buffer().is_empty() {
                to_server.flush().await?;
            }
        }
        Ok(())
    }
    .await;
    pump.abort();
    result
}

/// Backend → client, message by message; the `CopyInResponse` of a substituted `COPY` is
/// dropped (the client never sees copy mode).
async fn pump(
    mut from_server: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut to_client: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    swallow_copy_in: Arc<AtomicBool>,
) -> std::io::Result<()> {
    while let Some((tag, body)) = read_message(&mut from_server).await? {
        if tag == b'G' && swallow_copy_in.swap(false, Ordering::SeqCst) {
            continue;
        }
        write_message(&mut to_client, tag, &body).await?;
        if from_server.buffer().is_empty() {
            to_client.flush().await?;
        }
    }
    to_client.flush().await
}

async fn read_message<R: AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    if r.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    let tag = r.read_u8().await?;
    let len = r.read_i32().await?;
    let mut body = vec![0; (len as usize).saturating_sub(4)];
    r.read_exact(&mut body).await?;
    Ok(Some((tag, body)))
}

async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    tag: u8,
    body: &[u8],
) -> std::io::Result<()> {
    w.write_u8(tag).await?;
    w.write_i32(body.len() as i32 + 4).await?;
    w.write_all(body).await
}

fn cstring(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// A Redshift `COPY ... FROM 's3://...'`.
#[derive(Debug, PartialEq)]
struct S3Copy {
    /// The table and its column list, as written.
    target: String,
    /// The column list's contents, as written (empty without one).
    columns: String,
    url: String,
    manifest: bool,
    csv: bool,
    gzip: bool,
    empty_as_null: bool,
}

impl S3Copy {
    fn parse(sql: &str) -> Option<S3Copy> {
        let sql = sql.trim().trim_end_matches(';');
        if !sql.get(..5)?.eq_ignore_ascii_case("copy ") {
            return None;
        }
        let rest = &sql[5..];
        // The top-level FROM: outside quotes and parentheses.
        let (mut quote, mut depth, mut from) = (None, 0, None);
        let bytes = rest.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            match (quote, b) {
                (Some(q), _) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"') => quote = Some(b),
                (None, b'(') => depth += 1,
                (None, b')') => depth -= 1,
                (None, _)
                    if depth == 0
                        && rest[i..].len() > 5
                        && rest[i..i + 4].eq_ignore_ascii_case("from")
                        && i > 0
                        && bytes[i - 1].is_ascii_whitespace()
                        && bytes[i + 4].is_ascii_whitespace() =>
                {
                    from = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let from = from?;
        let target = rest[..from].trim().to_owned();
        let columns = match (target.find('('), target.rfind(')')) {
            (Some(open), Some(close)) if open < close => target[open + 1..close].trim().to_owned(),
            _ => String::new(),
        };
        let after = rest[from + 4..].trim_start();
        let literal = after.strip_prefix('\'')?;
        let mut url = String::new();
        let mut chars = literal.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|&(_, n)| n == '\'') {
                    chars.next();
                    url.push('\'');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                url.push(c);
            }
        }
        if !url.starts_with("s3://") {
            return None;
        }
        // Option words, with quoted arguments removed.
        let options: Vec<String> = strip_literals(&literal[end?..])
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let has = |word: &str| options.iter().any(|o| o == word);
        Some(S3Copy {
            target,
            columns,
            url,
            manifest: has("MANIFEST"),
            csv: has("CSV"),
            gzip: has("GZIP"),
            empty_as_null: has("EMPTYASNULL"),
        })
    }

    /// The PostgreSQL statement that takes the files' bytes.
    fn stdin_statement(&self) -> String {
        let options = if self.csv {
            if self.empty_as_null && !self.columns.is_empty() {
                format!("FORMAT csv, FORCE_NULL ({})", self.columns)
            } else {
                "FORMAT csv".to_owned()
            }
        } else {
            "FORMAT text, DELIMITER '|'".to_owned()
        };
        format!("COPY {} FROM STDIN WITH ({options})", self.target)
    }

    /// The bytes of every file the statement names, decompressed; `Err` as Redshift would
    /// fail.
    async fn fetch(&self, s3: &S3Location) -> Result<Vec<u8>, String> {
        let (bucket, key) = split_url(&self.url)?;
        let store = bucket_of(s3, bucket);
        let files: Vec<(String, bool)> = if self.manifest {
            let manifest = store
                .get(key)
                .await
                .map_err(|e| format!("cannot read manifest {}: {e}", self.url))?;
            let manifest: serde_json::Value = serde_json::from_slice(&manifest)
                .map_err(|e| format!("manifest {} is not JSON: {e}", self.url))?;
            manifest["entries"]
                .as_array()
                .ok_or_else(|| format!("manifest {} has no entries", self.url))?
                .iter()
                .map(|e| {
                    (
                        e["url"].as_str().unwrap_or_default().to_owned(),
                        e["mandatory"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        } else {
            let keys = store.list(key).await.map_err(|e| e.to_string())?;
            if keys.is_empty() {
                return Err(format!(
                    "the specified S3 prefix {} does not exist",
                    self.url
                ));
            }
            keys.into_iter()
                .map(|k| (format!("s3://{bucket}/{k}"), true))
                .collect()
        };
        let mut out = Vec::new();
        for (url, mandatory) in files {
            let (bucket, key) = split_url(&url)?;
            let body = match bucket_of(s3, bucket).get(key).await {
                Ok(body) => body,
                Err(_) if !mandatory => continue,
                Err(e) => return Err(format!("cannot read {url}: {e}")),
            };
            if self.gzip {
                MultiGzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .map_err(|e| format!("{url} is not gzip: {e}"))?;
            } else {
                out.extend_from_slice(&body);
            }
        }
        Ok(out)
    }
}

fn split_url(url: &str) -> Result<(&str, &str), String> {
    url.strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| format!("not an s3:// URL: {url}"))
}

fn bucket_of(s3: &S3Location, bucket: &str) -> Bucket {
    Bucket::new(S3Location {
        bucket: bucket.to_owned(),
        ..s3.clone()
    })
}

/// `text` with single-quoted literals removed.
fn strip_literals(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in text.chars() {
        if c == '\'' {
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[test]
fn parses_the_connectors_copy() {
    let sql = "COPY \"courier_stage_0\" (\"id\", \"received_at\") FROM 's3://staging/acme/tracks/x/manifest.json' CREDENTIALS 'aws_access_key_id=a;aws_secret_access_key=b' MANIFEST CSV GZIP TIMEFORMAT 'auto' ACCEPTINVCHARS TRUNCATECOLUMNS EMPTYASNULL COMPUPDATE OFF STATUPDATE OFF REGION 'us-east-1'";
    let copy = S3Copy::parse(sql).expect("an S3 COPY");
    assert_eq!(copy.target, "\"courier_stage_0\" (\"id\", \"received_at\")");
    assert_eq!(copy.url, "s3://staging/acme/tracks/x/manifest.json");
    assert!(copy.manifest && copy.csv && copy.gzip && copy.empty_as_null);
    assert_eq!(
        copy.stdin_statement(),
        "COPY \"courier_stage_0\" (\"id\", \"received_at\") FROM STDIN WITH (FORMAT csv, FORCE_NULL (\"id\", \"received_at\"))"
    );
    assert!(S3Copy::parse("COPY t FROM STDIN WITH (FORMAT csv)").is_none());
    assert!(S3Copy::parse("SELECT 'copy from s3://x'").is_none());
}
