//! One conformance suite for every cache tier (put, get, miss, overwrite, corrupt, incomplete,
//! delete, concurrent), run against memory, local, a real nginx WebDAV, object_store's
//! in-memory store, a file:// remote and S3 (moto); then the composite: coalescing and back-fill.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tickvault::cache::chunk_file::{ChunkData, ChunkFileWriter};
use tickvault::cache::{
    Chunk, ChunkStore, LocalStore, MemoryStore, RemoteMode, RemoteOptions, RemoteStore, Tier, Tiered,
};
use tickvault::fetch::{FetchConfig, FetchStats, Fetcher, RetryPolicy};
use tickvault::model::{ChunkKey, DataType};
use tickvault::tardis::{ClientConfig, Secret, TardisClient};

use crate::support::nginx::Nginx;
use crate::support::{Env, KEY, date};

/// A sealed chunk file of `rows` generated trades for `key`.
pub fn make_chunk(key: &ChunkKey, rows: usize, seed: u64, complete: bool) -> Chunk {
    let p = fake_tardis::generate::DayParams::new(&key.exchange, &key.symbol, key.date, rows).with_seed(seed);
    let csv = fake_tardis::generate::day_csv("trades", &p);
    let mut w = ChunkFileWriter::new(Cursor::new(Vec::new()), DataType::Trades).unwrap();
    tickvault::decode::decode_csv(DataType::Trades, "gen", csv.as_bytes(), |b| w.write(&b)).unwrap();
    let (meta, cur) = w.finish(key, complete).unwrap();
    Chunk {
        key: key.clone(),
        meta,
        data: ChunkData::Bytes(Bytes::from(cur.into_inner())),
    }
}

fn key(symbol: &str, day: &str) -> ChunkKey {
    ChunkKey::new("binance-futures", DataType::Trades, symbol, date(day))
}

async fn bytes_of(c: &Chunk) -> Bytes {
    c.bytes().await.unwrap()
}

/// How a test damages a stored entry behind the tier's back.
type Corrupter = Box<dyn Fn(&ChunkKey) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// The suite. `corrupt` damages the stored bytes of a key (None: the tier keeps nothing a test
/// can reach, so corruption is tested at `put`).
async fn conformance(store: Arc<dyn ChunkStore>, corrupt: Option<Corrupter>) {
    let name = store.describe();
    let a = key("BTCUSDT", "2024-02-02");
    let b = key("ETHUSDT", "2024-02-02");

    // miss
    assert!(store.get(&a).await.unwrap().is_none(), "{name}: miss");

    // put / get
    let chunk = make_chunk(&a, 500, 1, true);
    store.put(&chunk).await.unwrap();
    let got = store.get(&a).await.unwrap().expect("hit after put");
    assert_eq!(got.meta, chunk.meta, "{name}: metadata");
    assert_eq!(bytes_of(&got).await, bytes_of(&chunk).await, "{name}: bytes");
    assert!(store.get(&b).await.unwrap().is_none(), "{name}: other keys still miss");

    // overwrite
    let newer = make_chunk(&a, 700, 2, true);
    store.put(&newer).await.unwrap();
    let got = store.get(&a).await.unwrap().unwrap();
    assert_eq!(got.meta.rows, 700, "{name}: overwrite");
    assert_eq!(bytes_of(&got).await, bytes_of(&newer).await);

    // a chunk stored under the wrong key is not served for it
    let misplaced = Chunk {
        key: b.clone(),
        ..make_chunk(&a, 10, 3, true)
    };
    let _ = store.put(&misplaced).await;
    assert!(
        store.get(&b).await.unwrap().is_none(),
        "{name}: a file for another chunk is a miss"
    );

    // corrupt
    match &corrupt {
        Some(damage) => {
            damage(&a).await;
            assert!(
                store.get(&a).await.unwrap().is_none(),
                "{name}: corrupt entry is a miss"
            );
        }
        None => {
            let mut bad = bytes_of(&newer).await.to_vec();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x10;
            let damaged = Chunk {
                data: ChunkData::Bytes(bad.into()),
                ..newer.clone()
            };
            store.delete(&a).await.unwrap();
            assert!(store.put(&damaged).await.is_err(), "{name}: corrupt bytes are refused");
            assert!(store.get(&a).await.unwrap().is_none());
        }
    }
    // and it heals by a new put
    store.put(&newer).await.unwrap();
    assert!(store.get(&a).await.unwrap().is_some(), "{name}: repaired");

    // delete
    store.delete(&a).await.unwrap();
    assert!(store.get(&a).await.unwrap().is_none(), "{name}: deleted");
    store.delete(&a).await.unwrap();

    // incomplete days are never served as hits
    let partial = make_chunk(&a, 50, 4, false);
    let _ = store.put(&partial).await;
    assert!(store.get(&a).await.unwrap().is_none(), "{name}: incomplete is a miss");

    // concurrent: many writers and readers, same and different keys
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let shared = key("SHARED", "2024-02-03");
            let own = key(&format!("S{i}"), "2024-02-03");
            let c = make_chunk(&shared, 100 + i as usize, i, true);
            store.put(&c).await.unwrap();
            store.put(&make_chunk(&own, 50, i, true)).await.unwrap();
            let got = store.get(&shared).await.unwrap().expect("shared key present");
            assert!(got.meta.rows >= 100 && got.meta.rows < 116);
            assert_eq!(store.get(&own).await.unwrap().unwrap().meta.rows, 50);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn flip_file(path: std::path::PathBuf) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mid = b.len() / 3;
        b[mid] ^= 0x55;
        std::fs::write(&path, b).unwrap();
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_tier_conforms() {
    conformance(Arc::new(MemoryStore::new(64 << 20)), None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_tier_is_bounded_in_bytes() {
    let m = MemoryStore::new(200_000);
    for i in 0..20 {
        m.put(&make_chunk(&key(&format!("S{i}"), "2024-02-02"), 2000, i, true))
            .await
            .unwrap();
    }
    let size = m.weighted_size().await;
    assert!(size <= 200_000, "{size} bytes held");
    assert!(m.entry_count().await < 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_tier_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::open(dir.path()).unwrap();
    let l2 = local.clone();
    let corrupt: Corrupter = Box::new(move |k| flip_file(l2.path(k)));
    conformance(Arc::new(local.clone()), Some(corrupt)).await;
    // A corrupt local entry is also removed, not just skipped.
    let k = key("BTCUSDT", "2024-02-05");
    local.put(&make_chunk(&k, 10, 1, true)).await.unwrap();
    flip_file(local.path(&k)).await;
    assert!(local.get(&k).await.unwrap().is_none());
    assert!(!local.path(&k).exists());
}

fn remote_opts(url: &str, token: Option<&str>) -> RemoteOptions {
    RemoteOptions {
        url: url.parse().unwrap(),
        token: token.and_then(Secret::new),
        mode: RemoteMode::ReadWrite,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remote_tier_on_nginx_webdav_conforms() {
    let nginx = Nginx::start(Some("nginx-token"));
    let remote = RemoteStore::open(&remote_opts(&nginx.url(), Some("nginx-token"))).unwrap();
    let root = nginx.root().join("cache");
    let corrupt: Corrupter = Box::new(move |k| flip_file(root.join(k.cache_path())));
    conformance(Arc::new(remote), Some(corrupt)).await;
    let log = nginx.requests();
    assert!(
        log.iter()
            .any(|l| l.starts_with("PUT /cache/v1/binance-futures/trades/BTCUSDT/2024-02-02.parquet 20")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.ends_with(" 401")),
        "the token was sent on every request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remote_tier_on_an_object_store_conforms() {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let remote = RemoteStore::from_store(mem.clone(), "memory://", RemoteMode::ReadWrite, Duration::from_secs(5));
    let corrupt: Corrupter = Box::new(move |k| {
        let mem = mem.clone();
        let path = StorePath::from(k.cache_path());
        Box::pin(async move {
            let mut b = mem.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
            let n = b.len();
            b.truncate(n - 10);
            mem.put(&path, PutPayload::from(b)).await.unwrap();
        })
    });
    conformance(Arc::new(remote), Some(corrupt)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remote_tier_on_a_file_url_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/", dir.path().display());
    let remote = RemoteStore::open(&remote_opts(&url, None)).unwrap();
    let root = dir.path().to_path_buf();
    let corrupt: Corrupter = Box::new(move |k| flip_file(root.join(k.cache_path())));
    conformance(Arc::new(remote), Some(corrupt)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remote_tier_on_s3_conforms() {
    let moto = crate::support::moto::Moto::start();
    let bucket = moto.bucket("conformance").await;
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let s3: Arc<dyn ObjectStore> = Arc::new(s3);
    let remote = RemoteStore::from_store(
        s3.clone(),
        "s3://conformance",
        RemoteMode::ReadWrite,
        Duration::from_secs(10),
    );
    let corrupt: Corrupter = Box::new(move |k| {
        let s3 = s3.clone();
        let path = StorePath::from(k.cache_path());
        Box::pin(async move {
            s3.put(&path, PutPayload::from_static(b"<Error>garbage</Error>"))
                .await
                .unwrap();
        })
    });
    conformance(Arc::new(remote), Some(corrupt)).await;
}

fn fetcher(env: &Env, spool: &std::path::Path) -> Arc<Fetcher> {
    let client = TardisClient::new(ClientConfig {
        datasets_url: env.tardis.datasets_url().parse().unwrap(),
        api_url: env.tardis.api_url().parse().unwrap(),
        api_key: Secret::new(KEY),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let config = FetchConfig {
        concurrency: 4,
        rate_limit: None,
        decoders: 2,
        retry: RetryPolicy::default(),
        spool_dir: spool.to_path_buf(),
        keep_decoded: false,
        exported_until: Some(jiff::Timestamp::now()),
    };
    Arc::new(Fetcher::new(client, config, Arc::new(FetchStats::default())).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_one_chunk_cause_one_lookup_and_one_fetch() {
    let env = Env::with(
        fake_tardis::FakeTardis::builder()
            .api_key(KEY)
            .first_byte_latency(Duration::from_millis(300)),
    )
    .await;
    env.serve_generated("binance-futures", "trades", "BTCUSDT", date("2024-02-02"), 2000, 1);
    let local = LocalStore::open(&env.cache).unwrap();
    let fetcher = fetcher(&env, &local.spool_dir());
    let tiered = Tiered::builder(local)
        .memory(Some(MemoryStore::new(64 << 20)))
        .fetcher(Some(fetcher))
        .build();
    let k = key("BTCUSDT", "2024-02-02");
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let tiered = tiered.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            tiered.resolve(&k).await.map(|r| r.chunk.meta.rows)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 2000);
    }
    assert_eq!(env.dataset_requests(), 1, "one fetch for twelve concurrent requests");
    assert_eq!(tiered.lookups(), 1, "one lookup");
    // Later requests are memory hits.
    let again = tiered.resolve(&k).await.unwrap();
    assert_eq!(again.source, Tier::Memory);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_hit_back_fills_local_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let remote = RemoteStore::from_store(mem, "memory://", RemoteMode::ReadWrite, Duration::from_secs(5));
    let k = key("BTCUSDT", "2024-02-02");
    remote.put(&make_chunk(&k, 300, 1, true)).await.unwrap();
    let local = LocalStore::open(dir.path()).unwrap();
    let memory = MemoryStore::new(64 << 20);
    let tiered = Tiered::builder(local.clone())
        .memory(Some(memory.clone()))
        .remote(Some(remote))
        .build();
    let r = tiered.resolve(&k).await.unwrap();
    assert_eq!(r.source, Tier::Remote);
    assert_eq!(r.chunk.meta.rows, 300);
    assert!(
        matches!(r.chunk.data, ChunkData::File(_)),
        "the output reads the back-filled local file"
    );
    assert_eq!(
        local.get(&k).await.unwrap().unwrap().meta.rows,
        300,
        "local back-filled"
    );
    assert!(memory.get(&k).await.unwrap().is_some(), "memory back-filled");
    assert!(
        tiered.finish().await.uploaded == 0,
        "a remote hit is not uploaded again"
    );
}
