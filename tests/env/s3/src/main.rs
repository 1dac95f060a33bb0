//! `cairn-s3 --host H --port P --access-key ID ROOT`: an S3 server over the directory ROOT that accepts
//! requests signed with ID and the secret key in `$CAIRN_S3_SECRET_KEY` (kept off the command line, which
//! any user can read with `ps`). Serves until killed.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};

/// The variable holding the secret key.
const SECRET_VARIABLE: &str = "CAIRN_S3_SECRET_KEY";

struct Options {
    address: SocketAddr,
    access_key: String,
    root: PathBuf,
}

fn options() -> Result<Options, String> {
    let (mut host, mut port, mut access_key, mut root) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--host" => host = Some(value("--host")?),
            "--port" => port = Some(value("--port")?),
            "--access-key" => access_key = Some(value("--access-key")?),
            other if !other.starts_with("--") => root = Some(PathBuf::from(other)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let host = host.unwrap_or_else(|| "127.0.0.1".into());
    let port = port.ok_or("--port is required")?;
    let address = format!("{host}:{port}").parse().map_err(|e| format!("--host/--port: {e}"))?;
    Ok(Options {
        address,
        access_key: access_key.ok_or("--access-key is required")?,
        root: root.ok_or("the data directory is required")?,
    })
}

/// Serves until killed; returns only with the reason it cannot serve.
async fn serve() -> Result<std::convert::Infallible, String> {
    let options = options()?;
    let secret = std::env::var(SECRET_VARIABLE).map_err(|_| format!("${SECRET_VARIABLE} is not set"))?;
    let fs = s3s_fs::FileSystem::new(&options.root).map_err(|e| format!("{}: {e:?}", options.root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(options.access_key, secret));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(options.address).await.map_err(|e| e.to_string())?;
    println!("cairn-s3 listening on http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    loop {
        let (socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let service = service.clone();
        tokio::spawn(async move {
            let _ = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(socket), service).await;
        });
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Err(error) = serve().await;
    eprintln!("cairn-s3: {error}");
    ExitCode::FAILURE
}
