//! Outputs to object stores (moto's S3, and file://): merged and partitioned outputs equal
//! the local ones byte for byte, an identical re-run uploads nothing, and an upload killed
//! midway (held by a proxy in front of moto) never leaves a partial object: readers see the
//! previous complete object, or none; an interrupted multipart upload is aborted, and one a
//! SIGKILL left is aborted by the next run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

use crate::support::moto::Moto;
use crate::support::{Env, KEY, date, files_under};

const ARGS: [&str; 8] = [
    "-e",
    "binance-futures",
    "-s",
    "BTCUSDT,ETHUSDT",
    "--from",
    "2024-03-01",
    "--to",
    "2024-03-03",
];
const MERGED: &str = "binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-03.parquet";

fn serve(env: &Env, seed: u64) {
    for (d, day) in ["2024-03-01", "2024-03-02"].iter().enumerate() {
        for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
            env.serve_generated(
                "binance-futures",
                "trades",
                sym,
                date(day),
                2_000,
                seed + (d * 10 + s) as u64,
            );
        }
    }
}

fn cmd(env: &Env, moto: &Moto, out: &str, extra: &[&str]) -> std::process::Command {
    let mut c = env.cmd();
    for (k, v) in moto.env() {
        c.env(k, v);
    }
    c.arg("download")
        .args(ARGS)
        .args(["--api-key", KEY, "--json", "-o", out])
        .args(extra);
    c
}

/// The objects under `prefix` in `bucket`, with their bytes (signed requests, as moto wants).
pub(crate) async fn objects(moto: &Moto, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let prefix = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix.trim_end_matches('/')));
    let listed: Vec<_> = s3.list(prefix.as_ref()).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for meta in listed {
        let body = s3.get(&meta.location).await.unwrap().bytes().await.unwrap();
        out.insert(meta.location.to_string(), body.to_vec());
    }
    out
}

/// Multipart uploads begun and neither completed nor aborted, in `bucket`.
async fn open_uploads(moto: &Moto, bucket: &str) -> usize {
    let text = reqwest::Client::new()
        .get(format!("{}/{bucket}?uploads", moto.endpoint()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.matches("<UploadId>").count()
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn merged_and_partitioned_outputs_on_s3_equal_the_local_ones_and_a_rerun_uploads_nothing() {
    let moto = Moto::start();
    let bucket = moto.bucket("outputs").await;
    let env = Env::new().await;
    serve(&env, 1);
    let local = env.dir.path().join("local");
    let lake = env.dir.path().join("lake");
    crate::support::run(cmd(&env, &moto, local.to_str().unwrap(), &[]))
        .await
        .ok();
    crate::support::run(cmd(&env, &moto, lake.to_str().unwrap(), &["--partitioned"]))
        .await
        .ok();

    // Merged, to a prefix.
    let url = format!("s3://{bucket}/runs/merged/");
    let run = crate::support::run(cmd(&env, &moto, &url, &[])).await;
    run.ok();
    let out = &run.json()["outputs"][0];
    assert_eq!(out["path"], format!("{url}{MERGED}"));
    assert_eq!(out["status"], "written");
    let stored = objects(&moto, &bucket, "runs/merged/").await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        vec![&format!("runs/merged/{MERGED}")]
    );
    assert!(stored.values().next().unwrap() == &std::fs::read(local.join(MERGED)).unwrap());
    // Nothing lasting is left in the staging directory of the cache.
    assert!(
        files_under(&env.cache.join("outputs"))
            .iter()
            .all(|p| p.extension().is_none_or(|e| e != "parquet")),
        "{:?}",
        files_under(&env.cache.join("outputs"))
    );
    // The identical re-run reads the object's footer and writes nothing.
    let again = crate::support::run(cmd(&env, &moto, &url, &[])).await;
    again.ok();
    assert_eq!(again.json()["outputs"][0]["status"], "up_to_date");
    assert_eq!(again.json()["outputs"][0]["rows"], 8_000);

    // One named file.
    let file_url = format!("s3://{bucket}/one/trades.parquet");
    let run = crate::support::run(cmd(&env, &moto, &file_url, &[])).await;
    run.ok();
    assert_eq!(run.json()["outputs"][0]["path"], file_url);
    assert!(objects(&moto, &bucket, "one/").await["one/trades.parquet"] == std::fs::read(local.join(MERGED)).unwrap());

    // Partitioned, to a prefix: the same keys and bytes as the local lake.
    let lake_url = format!("s3://{bucket}/lake/");
    let run = crate::support::run(cmd(&env, &moto, &lake_url, &["--partitioned"])).await;
    run.ok();
    assert_eq!(run.json()["outputs"][0]["path"], format!("{lake_url}trades"));
    let stored: BTreeMap<String, Vec<u8>> = objects(&moto, &bucket, "lake/")
        .await
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("lake/").to_string(), v))
        .collect();
    let expected = tree(&lake);
    assert_eq!(stored.len(), 4);
    assert_eq!(stored.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    assert!(stored == expected);
    let again = crate::support::run(cmd(&env, &moto, &lake_url, &["--partitioned"])).await;
    again.ok();
    assert_eq!(again.json()["outputs"][0]["status"], "up_to_date");

    // file:// takes the same path.
    let dir = env.dir.path().join("store");
    let file_store = format!("file://{}/", dir.display());
    crate::support::run(cmd(&env, &moto, &file_store, &[])).await.ok();
    assert!(std::fs::read(dir.join(MERGED)).unwrap() == std::fs::read(local.join(MERGED)).unwrap());
    assert_eq!(open_uploads(&moto, &bucket).await, 0);
}

/// A proxy in front of moto that forwards everything but holds the upload of an output
/// object (its `PUT`, or a part of a multipart upload) for good, like a link that dies.
struct HoldingProxy {
    url: String,
    held: Arc<AtomicBool>,
}

async fn holding_proxy(moto: &Moto, prefix: &'static str) -> HoldingProxy {
    let upstream = moto.endpoint();
    let held = Arc::new(AtomicBool::new(false));
    let flag = held.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (upstream, flag, http) = (upstream.clone(), flag.clone(), http.clone());
        async move {
            let is_upload = method == Method::PUT && uri.path().contains(prefix);
            if is_upload {
                flag.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            let pq = uri.path_and_query().map_or("/", |p| p.as_str());
            let mut req = http.request(method, format!("{upstream}{pq}"));
            for (k, v) in &headers {
                if k != "host" {
                    req = req.header(k, v);
                }
            }
            let resp = req.body(body).send().await.unwrap();
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            let mut out = axum::http::Response::builder().status(status);
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            out.body(axum::body::Body::from(resp.bytes().await.unwrap())).unwrap()
        }
    });
    let app = app.layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    HoldingProxy { url, held }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_killed_midway_leaves_the_old_object_complete() {
    let moto = Moto::start();
    let bucket = moto.bucket("killed-upload").await;
    let env = Env::new().await;
    serve(&env, 1);
    let url = format!("s3://{bucket}/out/");
    let key = format!("out/{MERGED}");
    crate::support::run(cmd(&env, &moto, &url, &[])).await.ok();
    let old = objects(&moto, &bucket, "out/").await[&key].clone();

    // New data for the same request; the upload of the new output is held, then killed.
    serve(&env, 100);
    let proxy = holding_proxy(&moto, "/out/").await;
    let mut c = cmd(&env, &moto, &url, &["--refresh"]);
    c.env("AWS_ENDPOINT", &proxy.url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.held.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before uploading");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Readers see the old object, whole, and nothing else.
    let stored = objects(&moto, &bucket, "").await;
    assert_eq!(stored.keys().collect::<Vec<_>>(), vec![&key]);
    assert!(stored[&key] == old, "the old object is intact");
    assert_eq!(
        open_uploads(&moto, &bucket).await,
        0,
        "no multipart upload was begun for a small file"
    );

    // The next run publishes the new output (from the cache: the killed run fetched it).
    env.tardis.clear_requests();
    let run = crate::support::run(cmd(&env, &moto, &url, &[])).await;
    run.ok();
    assert_eq!(run.json()["outputs"][0]["status"], "written");
    assert_eq!(env.dataset_requests(), 0);
    let local = env.dir.path().join("local");
    crate::support::run(cmd(&env, &moto, local.to_str().unwrap(), &[]))
        .await
        .ok();
    let new = objects(&moto, &bucket, "out/").await[&key].clone();
    assert!(new != old && new == std::fs::read(local.join(MERGED)).unwrap());
}

/// A merged output over 8 MiB (two days of two symbols' 25-level snapshots): uploaded in parts.
fn serve_big(env: &Env) {
    for (d, day) in ["2024-03-01", "2024-03-02"].iter().enumerate() {
        for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
            env.serve_generated(
                "binance-futures",
                "book_snapshot_25",
                sym,
                date(day),
                30_000,
                (d * 10 + s) as u64,
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_upload_interrupted_or_killed_is_never_visible() {
    let moto = Moto::start();
    let bucket = moto.bucket("multipart").await;
    let env = Env::new().await;
    serve_big(&env);
    let url = format!("s3://{bucket}/big/");
    let args = ["-t", "book_snapshot_25"];
    let proxy = holding_proxy(&moto, "/big/").await;
    let start = |extra: &[&str]| {
        let mut c = cmd(&env, &moto, &url, &[&args[..], extra].concat());
        c.env("AWS_ENDPOINT", &proxy.url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        c.spawn().unwrap()
    };
    async fn wait_held(held: &AtomicBool, child: &mut std::process::Child) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !held.swap(false, Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "no part was uploaded");
            if child.try_wait().unwrap().is_some() {
                let mut out = String::new();
                std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
                panic!("the run ended before uploading: {out}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Ctrl-C while a part is on its way: the upload is aborted, nothing is visible.
    let mut child = start(&[]);
    wait_held(&proxy.held, &mut child).await;
    std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(objects(&moto, &bucket, "").await.is_empty());
    assert_eq!(
        open_uploads(&moto, &bucket).await,
        0,
        "the interrupted upload was aborted"
    );

    // SIGKILL cannot abort: the parts stay, invisible, until the next run aborts them.
    proxy.held.store(false, Ordering::SeqCst);
    let mut child = start(&[]);
    wait_held(&proxy.held, &mut child).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(objects(&moto, &bucket, "").await.is_empty());
    assert_eq!(open_uploads(&moto, &bucket).await, 1);

    // The next run aborts the upload the killed one left, and goes through: the object is
    // whole, the local output's bytes.
    let run = crate::support::run(cmd(&env, &moto, &url, &args)).await;
    run.ok();
    assert_eq!(open_uploads(&moto, &bucket).await, 0, "the left upload was aborted");
    let local = env.dir.path().join("local");
    crate::support::run(cmd(&env, &moto, local.to_str().unwrap(), &args))
        .await
        .ok();
    let name = MERGED.replace("trades", "book_snapshot_25");
    let expected = std::fs::read(local.join(&name)).unwrap();
    assert!(
        expected.len() as u64 > 8 * 1024 * 1024,
        "{} bytes: too small for parts",
        expected.len()
    );
    assert!(objects(&moto, &bucket, "big/").await[&format!("big/{name}")] == expected);
}
