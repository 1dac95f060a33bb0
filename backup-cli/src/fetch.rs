//! Reading what a Cairn server's download links point at: presigned `http(s)://` URLs, and `file://` URLs of
//! local locations (readable only on the server's machine). Logs are gzip text, lists and results gzip JSON.

use cairn_api::DownloadTargetKind;
use std::{io::Read, path::Path, time::Duration};

use crate::client::ServerApi;
use anyhow::{Context, bail};
use reqwest::Url;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How long the server may take to hand out a link.
const LINK_TIMEOUT: Duration = Duration::from_secs(30);

/// The bytes of `kind` of `name` (a backup's or restore's file), through a DownloadRequest.
pub(crate) async fn download(server: &ServerApi, kind: DownloadTargetKind, name: &str) -> anyhow::Result<Vec<u8>> {
    let link = server.download_link(kind, name, LINK_TIMEOUT).await?;
    fetch(&link).await
}

/// Writes `kind` of `name` to `file` through a DownloadRequest; returns the bytes written.
pub(crate) async fn download_to_file(
    server: &ServerApi,
    kind: DownloadTargetKind,
    name: &str,
    file: &Path,
) -> anyhow::Result<u64> {
    let link = server.download_link(kind, name, LINK_TIMEOUT).await?;
    fetch_to_file(&link, file).await
}

/// Writes `kind` of `name` to `out` (`shown` in errors) through a DownloadRequest; returns the bytes written.
pub(crate) async fn download_to(
    server: &ServerApi,
    kind: DownloadTargetKind,
    name: &str,
    out: &mut (impl AsyncWrite + Unpin),
    shown: &str,
) -> anyhow::Result<u64> {
    let link = server.download_link(kind, name, LINK_TIMEOUT).await?;
    fetch_to(&link, out, shown).await
}

enum Source {
    Http(Url),
    File(std::path::PathBuf),
}

fn source(link: &str) -> anyhow::Result<Source> {
    let url = Url::parse(link).with_context(|| format!("the server's download link {link:?} is not a URL"))?;
    match url.scheme() {
        "http" | "https" => Ok(Source::Http(url)),
        "file" => match url.to_file_path() {
            Ok(path) => Ok(Source::File(path)),
            Err(()) => bail!("the server's download link {link:?} is not an absolute file path"),
        },
        other => bail!("the server's download link uses the unsupported scheme {other:?}"),
    }
}

fn unreadable_local(path: &Path, error: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot read {} ({error}): the location is a directory on the server's machine; run cairn there, or use an S3 location",
        path.display()
    )
}

fn http_error(url: &Url, error: reqwest::Error) -> anyhow::Error {
    let mut shown = url.clone();
    shown.set_query(None);
    anyhow::anyhow!("downloading {shown} failed: {}", error.without_url())
}

async fn get(url: &Url) -> anyhow::Result<reqwest::Response> {
    let response = reqwest::get(url.clone()).await.map_err(|e| http_error(url, e))?;
    response.error_for_status().map_err(|e| http_error(url, e))
}

/// The bytes behind a link.
pub(crate) async fn fetch(link: &str) -> anyhow::Result<Vec<u8>> {
    match source(link)? {
        Source::File(path) => tokio::fs::read(&path).await.map_err(|e| unreadable_local(&path, e)),
        Source::Http(url) => Ok(get(&url).await?.bytes().await.map_err(|e| http_error(&url, e))?.to_vec()),
    }
}

/// Streams the bytes behind a link into `file`; returns how many were written.
pub(crate) async fn fetch_to_file(link: &str, file: &Path) -> anyhow::Result<u64> {
    let mut out = tokio::fs::File::create(file).await.with_context(|| format!("creating {}", file.display()))?;
    fetch_to(link, &mut out, &file.display().to_string()).await
}

/// Streams the bytes behind a link into `out` (`shown` in errors); returns how many were written.
async fn fetch_to(link: &str, out: &mut (impl AsyncWrite + Unpin), shown: &str) -> anyhow::Result<u64> {
    let written = match source(link)? {
        Source::File(path) => {
            let mut input = tokio::fs::File::open(&path).await.map_err(|e| unreadable_local(&path, e))?;
            tokio::io::copy(&mut input, out).await.with_context(|| format!("writing {shown}"))?
        }
        Source::Http(url) => {
            let mut response = get(&url).await?;
            let mut written = 0u64;
            while let Some(chunk) = response.chunk().await.map_err(|e| http_error(&url, e))? {
                out.write_all(&chunk).await.with_context(|| format!("writing {shown}"))?;
                written += chunk.len() as u64;
            }
            written
        }
    };
    out.flush().await?;
    Ok(written)
}

/// Gzip-compressed text, decompressed.
pub(crate) fn gunzip_text(bytes: &[u8]) -> anyhow::Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).context("the downloaded file is not gzip text")?;
    Ok(text)
}

/// Gzip-compressed JSON, decompressed and read.
pub(crate) fn gunzip_json<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
    serde_json::from_reader(flate2::read::GzDecoder::new(bytes)).context("the downloaded file is not gzip JSON")
}
