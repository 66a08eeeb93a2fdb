//! A real S3 server on loopback: `s3s-fs` (the S3 API over a directory, SigV4 authentication)
//! served by hyper, for the demo and the tests.
//!
//! Buckets are directories under the root; objects are files. Requests must be signed with
//! the one access key pair the server is started with, like a real bucket with static
//! credentials. Path-style addressing only.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The access key the devstack's S3 server accepts by default.
pub const ACCESS_KEY: &str = "courier-local";
/// The secret key the devstack's S3 server accepts by default.
pub const SECRET_KEY: &str = "courier-local-secret";

/// A running S3 server; stops when dropped.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl S3Server {
    /// Serves the S3 API for the directory `root` on `listen` (port 0 picks a free port),
    /// accepting requests signed with `access_key`/`secret_key`. Each direct child of `root`
    /// is a bucket; `buckets` are created up front.
    pub async fn start(
        root: &Path,
        listen: &str,
        access_key: &str,
        secret_key: &str,
        buckets: &[&str],
    ) -> anyhow::Result<S3Server> {
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket))?;
        }
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|e| anyhow::anyhow!("cannot serve {}: {e:?}", root.display()))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(S3Server { addr, task })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its endpoint URL, for `endpoint` settings.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
