//! The fake HTTP server: datasets under `/datasets/v1`, metadata under `/api/v1`.
//!
//! Every request takes the same path through [`handle`]: it is recorded, then answered in
//! the order the real service would decide it (fail-all → auth → scripted fault → file
//! lookup). Shared state sits behind one `std::sync::Mutex` that is never held across an
//! `.await`, so concurrent requests for the same file stream in parallel.

mod body;
mod exchange;
mod fault;
mod storm;

pub use exchange::{SymbolGroup, SymbolMeta};
pub use fault::Fault;
pub use storm::StormMix;

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::serve::ListenerExt;
use bytes::Bytes;
use jiff::Timestamp;
use jiff::civil::Date;

use body::{Plan, Source};
use exchange::ExchangeConfig;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The full URL path, percent-decoded (`/datasets/v1/bitget/trades/2024/01/02/??USDT.csv.gz`).
    pub path: String,
    /// The raw query string without `?` (e.g. `retryAttempt=2`), if any.
    pub query: Option<String>,
    /// The `Authorization` header as sent (`Bearer <key>`, or `""` as tardis-node sends).
    pub authorization: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `Accept-Encoding` header.
    pub accept_encoding: Option<String>,
    /// The `Range` header (the real host ignores it and answers 200 with the whole file).
    pub range: Option<String>,
    /// The status answered; 0 while the answer is still being decided.
    pub status: u16,
}

/// Configures a [`FakeTardis`] before it starts.
#[derive(Debug, Clone)]
pub struct Builder {
    keys: Vec<String>,
    root: Option<PathBuf>,
    content_encoding_gzip: bool,
    first_byte_latency: Duration,
    api_latency: Duration,
    addr: SocketAddr,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            keys: Vec::new(),
            root: None,
            content_encoding_gzip: false,
            first_byte_latency: Duration::ZERO,
            api_latency: Duration::ZERO,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        }
    }
}

impl Builder {
    /// Adds a valid API key (call again for more). Any other non-empty key gets 401.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Also serves files from `{root}/{exchange}/{data_type}/{yyyy}/{mm}/{dd}/{symbol}.csv.gz`
    /// (streamed from disk), after the in-memory files.
    #[must_use]
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// Adds `Content-Encoding: gzip` to dataset responses, to check that clients save the
    /// gzip bytes instead of letting their HTTP library decompress them.
    #[must_use]
    pub fn content_encoding_gzip(mut self, on: bool) -> Self {
        self.content_encoding_gzip = on;
        self
    }

    /// Delay before the response head of every dataset request.
    #[must_use]
    pub fn first_byte_latency(mut self, d: Duration) -> Self {
        self.first_byte_latency = d;
        self
    }

    /// Delay before the response head of every metadata API request (`/api/v1/...`).
    #[must_use]
    pub fn api_latency(mut self, d: Duration) -> Self {
        self.api_latency = d;
        self
    }

    /// Address to listen on (default `127.0.0.1:0`, a free port).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Panics
    /// If the address cannot be bound (see [`Builder::try_start`]), or outside a tokio runtime.
    pub async fn start(self) -> FakeTardis {
        let addr = self.addr;
        self.try_start()
            .await
            .unwrap_or_else(|e| panic!("fake-tardis: cannot listen on {addr}: {e}"))
    }

    /// Binds and starts serving on the current tokio runtime (the server task is spawned on
    /// it, so this panics outside a runtime).
    ///
    /// # Errors
    /// If the address cannot be bound.
    pub async fn try_start(self) -> std::io::Result<FakeTardis> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            keys: self.keys,
            root: self.root,
            content_encoding_gzip: self.content_encoding_gzip,
            state: Mutex::new(ServerState {
                latency: self.first_byte_latency,
                api_latency: self.api_latency,
                ..ServerState::default()
            }),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // Small writes (a stalled or dropped body's first bytes) must leave at once.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        Ok(FakeTardis {
            inner: Arc::new(Handle {
                shared,
                addr,
                stop: Mutex::new(Some(stop_tx)),
            }),
        })
    }
}

/// A running fake Tardis server. Clones share the server; it stops when the last clone is
/// dropped or on [`FakeTardis::shutdown`].
#[derive(Debug, Clone)]
pub struct FakeTardis {
    inner: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Handle {
    fn stop(&self) {
        if let Some(tx) = lock(&self.stop).take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
struct Shared {
    keys: Vec<String>,
    root: Option<PathBuf>,
    content_encoding_gzip: bool,
    state: Mutex<ServerState>,
}

#[derive(Debug, Default)]
struct ServerState {
    /// In-memory files by dataset path.
    files: HashMap<String, Bytes>,
    scripts: HashMap<String, VecDeque<Fault>>,
    /// Faults of metadata API paths (`exchanges`, `exchanges/deribit`).
    api_scripts: HashMap<String, VecDeque<Fault>>,
    fail_all: Option<u16>,
    fail_api: Option<u16>,
    latency: Duration,
    api_latency: Duration,
    /// Whether the built-in 401s quote the key sent.
    echo_secrets: bool,
    /// Declared metadata per exchange id.
    exchanges: HashMap<String, ExchangeConfig>,
    /// Records with a sequence number, so a status can be filled in after `clear_requests`.
    requests: Vec<(u64, RequestRecord)>,
    next_request: u64,
}

/// Locks, ignoring poisoning: a panicking test thread must not wedge the server for others.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, ServerState> {
        lock(&self.state)
    }
}

impl FakeTardis {
    /// A builder for a server with options (API keys, a root directory, ...).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A server with default options: no valid API key, no root directory.
    pub async fn start() -> FakeTardis {
        Builder::default().start().await
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// `{base}/datasets/v1`, standing for `https://datasets.tardis.dev/v1`.
    pub fn datasets_url(&self) -> String {
        format!("{}/datasets/v1", self.base_url())
    }

    /// `{base}/api/v1`, standing for `https://api.tardis.dev/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1", self.base_url())
    }

    /// A dataset's path relative to [`datasets_url`](Self::datasets_url), e.g.
    /// `deribit/trades/2024/01/02/BTC-PERPETUAL.csv.gz`; the symbol is not encoded. This is
    /// the key of [`add_gz`](Self::add_gz) and [`script`](Self::script).
    pub fn dataset_path(exchange: &str, data_type: &str, date: Date, symbol: &str) -> String {
        format!(
            "{exchange}/{data_type}/{:04}/{:02}/{:02}/{symbol}.csv.gz",
            date.year(),
            date.month(),
            date.day()
        )
    }

    /// The full URL a client should request, with the symbol encoded like JavaScript's
    /// `encodeURIComponent` (as the official clients do).
    pub fn dataset_url(&self, exchange: &str, data_type: &str, date: Date, symbol: &str) -> String {
        format!(
            "{}/{}",
            self.datasets_url(),
            Self::dataset_path(exchange, data_type, date, &encode_uri_component(symbol))
        )
    }

    /// Serves `body` as-is for that dataset (any gzip, or deliberately broken bytes).
    pub fn add_gz(&self, exchange: &str, data_type: &str, date: Date, symbol: &str, body: impl Into<Bytes>) {
        let path = Self::dataset_path(exchange, data_type, date, symbol);
        self.inner.shared.state().files.insert(path, body.into());
    }

    /// Serves `csv` gzipped at level 6 (one member) for that dataset.
    pub fn add_csv(&self, exchange: &str, data_type: &str, date: Date, symbol: &str, csv: &str) {
        self.add_gz(exchange, data_type, date, symbol, crate::r#gen::gzip(csv.as_bytes()));
    }

    /// Queues faults for a dataset path (as returned by [`dataset_path`](Self::dataset_path);
    /// a leading `/` or `/datasets/v1/` is tolerated). Each request to the path pops the
    /// next fault; when none are left the path is served normally. Calling again appends.
    pub fn script(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        let key = path.trim_start_matches('/');
        let key = key.strip_prefix("datasets/v1/").unwrap_or(key).to_owned();
        self.inner.shared.state().scripts.entry(key).or_default().extend(faults);
    }

    /// `Some(code)`: every request (datasets and API) answers `code` with a JSON error body.
    /// `None`: back to normal.
    pub fn fail_all(&self, status: Option<u16>) {
        self.inner.shared.state().fail_all = status;
    }

    /// Delay before the response head of every dataset request from now on.
    pub fn set_first_byte_latency(&self, d: Duration) {
        self.inner.shared.state().latency = d;
    }

    /// Overrides `datasets.exportedUntil` of an exchange (default: start of the UTC day).
    /// Nothing is cached: the next metadata request sees the new value, so a test can move
    /// it forward while a client polls.
    pub fn set_exported_until(&self, exchange: &str, ts: Timestamp) {
        self.exchange_config(exchange, |c| c.exported_until = Some(ts));
    }

    /// Overrides `datasets.exportedFrom` of an exchange (default: the earliest
    /// `availableSince` of its symbols, or `exportedUntil` when it has none).
    pub fn set_exported_from(&self, exchange: &str, ts: Timestamp) {
        self.exchange_config(exchange, |c| c.exported_from = Some(ts));
    }

    /// Overrides the exchange's `availableSince` (in `/v1/exchanges` and
    /// `/v1/exchanges/{id}`; default: as `exportedFrom`).
    pub fn set_available_since(&self, exchange: &str, ts: Timestamp) {
        self.exchange_config(exchange, |c| c.available_since = Some(ts));
    }

    /// `Some`: the exchange is delisted, with `"delisted": true` and this `availableTo` (in
    /// both endpoints). `None`: listed again (both fields absent, the default).
    pub fn set_available_to(&self, exchange: &str, ts: Option<Timestamp>) {
        self.exchange_config(exchange, |c| c.available_to = ts);
    }

    /// Declares a symbol in the metadata of `exchange` without serving any file: it appears
    /// in `datasets.symbols` (and, unless grouped, in `availableSymbols`) of
    /// `/v1/exchanges/{exchange}`, and makes the exchange known. When files of the same
    /// symbol id exist too, the declaration's type and dates win and the data types are the
    /// union of both. Declaring the same id again replaces the declaration.
    pub fn add_symbol(&self, exchange: &str, symbol: SymbolMeta) {
        self.exchange_config(exchange, |c| {
            c.symbols.insert(symbol.id.clone(), symbol);
        });
    }

    fn exchange_config(&self, exchange: &str, f: impl FnOnce(&mut ExchangeConfig)) {
        f(self
            .inner
            .shared
            .state()
            .exchanges
            .entry(exchange.to_owned())
            .or_default());
    }

    /// `Some(code)`: every metadata API request answers `code` with the API's JSON error body
    /// (`{"code":…,"message":…}`), while datasets are served as usual. `None`: back to normal.
    pub fn fail_api(&self, status: Option<u16>) {
        self.inner.shared.state().fail_api = status;
    }

    /// Delay before the response head of every metadata API request from now on.
    pub fn set_api_latency(&self, d: Duration) {
        self.inner.shared.state().api_latency = d;
    }

    /// Queues faults for a metadata API path: `exchanges` or `exchanges/{id}` (a leading `/`
    /// or `/api/v1/` is tolerated), popped one per request like [`script`](Self::script).
    /// Status, delay and HTML faults answer as on the datasets host; the byte-level ones
    /// (truncate, drop, stall, trickle, corrupt) act on the JSON body.
    pub fn script_api(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        let key = path.trim_start_matches('/');
        let key = key
            .strip_prefix("api/v1/")
            .unwrap_or(key)
            .trim_end_matches('/')
            .to_owned();
        self.inner
            .shared
            .state()
            .api_scripts
            .entry(key)
            .or_default()
            .extend(faults);
    }

    /// `true`: the fake's own 401s for a wrong key quote the key sent in their message
    /// (`Invalid API key 'sk-…'`), as a careless server might. Default `false`.
    pub fn set_echo_secrets(&self, on: bool) {
        self.inner.shared.state().echo_secrets = on;
    }

    /// Queues a reproducible storm of faults on each of `paths` (dataset paths as for
    /// [`script`](Self::script)), drawn from `mix` with `seed`: see [`StormMix`] for the odds,
    /// the default mix and the cap that lets every path succeed in the end. The same seed,
    /// paths and files give the same scripts; each path's script depends only on the seed,
    /// the path and its file's length. Appends to any faults already queued, and returns the
    /// faults queued per path (paths normalised, in the order given).
    pub fn script_storm<I, P>(&self, paths: I, seed: u64, mix: &StormMix) -> Vec<(String, Vec<Fault>)>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        let mut out = Vec::new();
        for p in paths {
            let key = p.as_ref().trim_start_matches('/');
            let key = key.strip_prefix("datasets/v1/").unwrap_or(key).to_owned();
            let faults = mix.script_for(&key, seed, self.body_len(&key));
            self.script(&key, faults.iter().cloned());
            out.push((key, faults));
        }
        out
    }

    /// Length of the file served at a dataset path, if the fake has one.
    fn body_len(&self, key: &str) -> Option<u64> {
        if let Some(b) = self.inner.shared.state().files.get(key) {
            return Some(b.len() as u64);
        }
        let root = self.inner.shared.root.as_ref()?;
        let req = DatasetRequest::parse(key)?;
        std::fs::metadata(req.root_path(root))
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
    }

    /// Every dataset path the fake can serve: in-memory files and, with a root, the files
    /// under it (blocking: it walks the tree).
    pub fn dataset_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.inner.shared.state().files.keys().cloned().collect();
        if let Some(root) = &self.inner.shared.root {
            for ex in exchange::root_exchanges(root) {
                for (ty, d, sym) in exchange::scan_root(root, &ex) {
                    paths.push(Self::dataset_path(&ex, &ty, d, &sym));
                }
            }
        }
        paths.sort();
        paths.dedup();
        paths
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner
            .shared
            .state()
            .requests
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Only the requests under `/datasets/`.
    pub fn dataset_requests(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/datasets/"))
            .collect()
    }

    /// Only the requests under `/api/` (the metadata API).
    pub fn api_requests(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/"))
            .collect()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.inner.shared.state().requests.clear();
    }

    /// Stops accepting connections; requests in flight finish. Also happens when the last
    /// clone is dropped.
    pub fn shutdown(&self) {
        self.inner.stop();
    }
}

/// JavaScript's `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are; invalid UTF-8 is replaced).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A JSON error in the API's shape: `{"code": <number>, "message": "<text>"}`.
fn error(code: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body))
        .expect("static headers are valid")
}

fn default_message(code: u16) -> String {
    match code {
        429 => "Too many requests, please slow down and retry after the time given in Retry-After".to_owned(),
        500 => "Internal server error".to_owned(),
        _ => StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
            .to_owned(),
    }
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(v.to_string()))
        .expect("static headers are valid")
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let raw_path = parts.uri.path().to_owned();
    let text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let record = RequestRecord {
        method: parts.method.to_string(),
        path: percent_decode(&raw_path),
        query: parts.uri.query().map(str::to_owned),
        authorization: text(header::AUTHORIZATION),
        user_agent: text(header::USER_AGENT),
        accept_encoding: text(header::ACCEPT_ENCODING),
        range: text(header::RANGE),
        status: 0,
    };
    let id = {
        let mut st = shared.state();
        let id = st.next_request;
        st.next_request += 1;
        st.requests.push((id, record));
        id
    };
    let (response, delay) = if let Some(rest) = raw_path.strip_prefix("/datasets/v1/") {
        dataset(&shared, &parts.method, rest, &parts.headers).await
    } else if let Some(rest) = raw_path.strip_prefix("/api/v1/") {
        api(&shared, &parts.method, rest, &parts.headers).await
    } else {
        match shared.state().fail_all {
            Some(code) => (error(code, &default_message(code)), Duration::ZERO),
            None => (error(404, "Not found"), Duration::ZERO),
        }
    };
    {
        let mut st = shared.state();
        if let Some((_, r)) = st.requests.iter_mut().rev().find(|(i, _)| *i == id) {
            r.status = response.status().as_u16();
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

/// A parsed, percent-decoded dataset request path.
struct DatasetRequest {
    exchange: String,
    data_type: String,
    year: String,
    month: String,
    day: String,
    symbol: String,
}

impl DatasetRequest {
    fn parse(rest: &str) -> Option<DatasetRequest> {
        let segs: Vec<String> = rest.split('/').map(percent_decode).collect();
        // Decoded segments name directories under `root`: no traversal, no separators.
        let safe = |s: &String| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']);
        if segs.len() != 6 || !segs.iter().all(safe) {
            return None;
        }
        let [exchange, data_type, year, month, day, file] = <[String; 6]>::try_from(segs).ok()?;
        let symbol = file.strip_suffix(".csv.gz")?.to_owned();
        if symbol.is_empty() {
            return None;
        }
        Some(DatasetRequest {
            exchange,
            data_type,
            year,
            month,
            day,
            symbol,
        })
    }

    fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}/{}.csv.gz",
            self.exchange, self.data_type, self.year, self.month, self.day, self.symbol
        )
    }

    /// The file's place under a root directory.
    fn root_path(&self, root: &std::path::Path) -> PathBuf {
        root.join(&self.exchange)
            .join(&self.data_type)
            .join(&self.year)
            .join(&self.month)
            .join(&self.day)
            .join(format!("{}.csv.gz", self.symbol))
    }

    /// The day in the path, if it is a valid date (`None` for e.g. `2024/13/40`).
    fn date(&self) -> Option<Date> {
        Date::new(
            self.year.parse().ok()?,
            self.month.parse().ok()?,
            self.day.parse().ok()?,
        )
        .ok()
    }

    /// "Historical datasets for the first day of each month are available to download
    /// without API key" (docs.tardis.dev/downloadable-csv-files).
    fn free_day(&self) -> bool {
        self.day == "01"
    }
}

/// The `Authorization` value as sent (lossily decoded), and the key in it if it is
/// `Bearer <key>` (else the whole value).
fn credentials(headers: &HeaderMap) -> (String, String) {
    let raw = headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let key = match raw.trim().split_once(' ') {
        Some((scheme, k)) if scheme.eq_ignore_ascii_case("bearer") => k.trim().to_owned(),
        _ => raw.trim().to_owned(),
    };
    (raw, key)
}

/// Checks `Authorization: Bearer <key>`; `Err` holds the message of the 401 to send.
fn authorize(shared: &Shared, headers: &HeaderMap, free_day: bool) -> Result<(), String> {
    const INVALID: &str = "Invalid API key";
    let invalid = || {
        if shared.state().echo_secrets {
            format!("{INVALID} '{}'", credentials(headers).1)
        } else {
            INVALID.to_owned()
        }
    };
    let value = match headers.get(header::AUTHORIZATION) {
        // Not a valid string: certainly not a valid key.
        Some(v) => v.to_str().map_err(|_| invalid())?.trim(),
        None => "",
    };
    let key = match value.split_once(' ') {
        Some((scheme, k)) if scheme.eq_ignore_ascii_case("bearer") => k.trim(),
        _ if value.is_empty() || value.eq_ignore_ascii_case("bearer") => "",
        // A credential without the Bearer scheme is not a key the API accepts.
        _ => return Err(invalid()),
    };
    if key.is_empty() {
        if free_day {
            Ok(())
        } else {
            Err(
                "API key is required to download historical datasets other than the first day of each month. \
                 Pass it in the 'Authorization: Bearer <API_KEY>' header."
                    .to_owned(),
            )
        }
    } else if shared.keys.iter().any(|k| k == key) {
        Ok(())
    } else {
        Err(invalid())
    }
}

fn status_response(code: u16, retry_after: Option<u64>, body: Option<String>) -> Response {
    let mut resp = match body {
        None => error(code, &default_message(code)),
        Some(b) => {
            let ct = if b.trim_start().starts_with('{') {
                "application/json; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(b))
                .expect("static headers are valid")
        }
    };
    if let Some(s) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// An HTML page standing in for the file: a captive portal's login page on a 200, a CDN's
/// error page otherwise.
fn html_response(status: u16) -> Response {
    let page = if status == 200 {
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Guest Wi-Fi - Sign in</title>\n</head>\n<body>\n<h1>Welcome to Guest Wi-Fi</h1>\n\
         <p>Please accept the terms of use to continue browsing.</p>\n\
         <form method=\"post\" action=\"/login\"><input type=\"checkbox\" name=\"accept\"> I accept\n\
         <button type=\"submit\">Connect</button></form>\n</body>\n</html>\n"
            .to_owned()
    } else {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        format!(
            "<!DOCTYPE html>\n<html>\n<head><title>{status} {reason}</title></head>\n<body>\n\
             <center><h1>{status} {reason}</h1></center>\n<hr><center>cloudfront</center>\n\
             </body>\n</html>\n"
        )
    };
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::from(page))
        .expect("static headers are valid")
}

/// A JSON error whose message quotes the request's credentials verbatim.
fn echo_auth_response(code: u16, headers: &HeaderMap, what: &str) -> Response {
    let (raw, key) = credentials(headers);
    let message = if code == 401 {
        format!("Invalid API key '{key}' (Authorization: {raw})")
    } else {
        format!("API key '{key}' has no access to {what} (Authorization: {raw})")
    };
    let mut resp = error(code, &message);
    if code == 401
        && let Ok(v) = HeaderValue::from_str(&format!(
            "Bearer realm=\"tardis\", error=\"invalid_token\", error_description=\"invalid key {key}\""
        ))
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The byte-level part of a fault, applied to a body of `full_len` bytes.
fn plan_for(fault: Option<&Fault>, full_len: u64) -> Plan {
    let mut plan = Plan {
        len: full_len,
        ..Plan::default()
    };
    match fault {
        Some(Fault::DropAfter(n)) => plan.abort_at = Some((*n as u64).min(full_len.saturating_sub(1))),
        Some(Fault::Truncate(n)) => plan.len = (*n as u64).min(full_len),
        // The gzip trailer is CRC32 then ISIZE (4 bytes each, little endian).
        Some(Fault::CorruptCrc) => plan.corrupt_at = full_len.checked_sub(8).or(full_len.checked_sub(1)),
        Some(Fault::Stall { after, duration }) => plan.stall = Some((*after as u64, *duration)),
        Some(Fault::Trickle { bytes_per_sec }) => plan.rate = Some((*bytes_per_sec).max(1)),
        _ => {}
    }
    plan
}

/// A 200 `text/csv` with a generated gzip bomb as its body, streamed.
fn bomb_response(shared: &Shared, bomb: &crate::r#gen::GzipBomb) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/csv")
        .header(header::CONTENT_LENGTH, bomb.compressed_len());
    if shared.content_encoding_gzip {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
    }
    let pieces = futures::stream::iter(bomb.chunks().map(Ok::<_, std::io::Error>));
    builder
        .body(Body::from_stream(pieces))
        .expect("static headers are valid")
}

/// Answers a dataset request; the `Duration` is how long to wait before sending the head.
async fn dataset(shared: &Shared, method: &Method, rest: &str, headers: &HeaderMap) -> (Response, Duration) {
    let (latency, fail_all) = {
        let st = shared.state();
        (st.latency, st.fail_all)
    };
    if let Some(code) = fail_all {
        return (error(code, &default_message(code)), latency);
    }
    let Some(req) = DatasetRequest::parse(rest) else {
        return (error(404, "Not found"), latency);
    };
    if method == Method::HEAD {
        // Observed on the real host: a bare HEAD 404s while GET serves the file.
        return (error(404, "Not found"), latency);
    }
    if method != Method::GET {
        return (error(405, "Method not allowed"), latency);
    }
    if let Err(msg) = authorize(shared, headers, req.free_day()) {
        return (error(401, &msg), latency);
    }
    let key = req.key();
    let (fault, mem) = {
        let mut st = shared.state();
        let fault = st.scripts.get_mut(&key).and_then(VecDeque::pop_front);
        (fault, st.files.get(&key).cloned())
    };
    let mut delay = latency;
    // Faults that replace the answer, file or not.
    match &fault {
        Some(Fault::Status {
            code,
            retry_after,
            body,
        }) => return (status_response(*code, *retry_after, body.clone()), delay),
        Some(Fault::Delay(d)) => delay += *d,
        Some(Fault::Html { status }) => return (html_response(*status), delay),
        Some(Fault::EchoAuth { code }) => {
            let what = format!(
                "{} {} {}-{}-{} {}",
                req.exchange, req.data_type, req.year, req.month, req.day, req.symbol
            );
            return (echo_auth_response(*code, headers, &what), delay);
        }
        Some(Fault::GzipBomb { zeros }) => {
            let bomb = crate::r#gen::GzipBomb::zeros(&req.data_type, *zeros);
            return (bomb_response(shared, &bomb), delay);
        }
        Some(Fault::HugeLine { len }) => {
            let date = req.date().unwrap_or(jiff::civil::date(2024, 1, 1));
            let bomb = crate::r#gen::GzipBomb::huge_field(&req.data_type, &req.exchange, &req.symbol, date, *len);
            return (bomb_response(shared, &bomb), delay);
        }
        _ => {}
    }
    let found = match mem {
        Some(b) => Some((b.len() as u64, Source::Memory(b))),
        None => open_in_root(shared, &req).await,
    };
    let Some((full_len, src)) = found else {
        let msg = format!(
            "Dataset not found: {} {} {}-{}-{} {}",
            req.exchange, req.data_type, req.year, req.month, req.day, req.symbol
        );
        return (error(404, &msg), delay);
    };
    let plan = plan_for(fault.as_ref(), full_len);
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        // The real host labels the gzip bytes text/csv.
        .header(header::CONTENT_TYPE, "text/csv")
        .header(header::CONTENT_LENGTH, plan.len);
    if shared.content_encoding_gzip {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
    }
    let resp = builder
        .body(Body::from_stream(body::stream(src, plan)))
        .expect("static headers are valid");
    (resp, delay)
}

async fn open_in_root(shared: &Shared, req: &DatasetRequest) -> Option<(u64, Source)> {
    let root = shared.root.as_ref()?;
    let file = tokio::fs::File::open(req.root_path(root)).await.ok()?;
    let meta = file.metadata().await.ok()?;
    meta.is_file().then(|| (meta.len(), Source::File(file)))
}

/// Answers a metadata API request; the `Duration` is how long to wait before the head.
async fn api(shared: &Arc<Shared>, method: &Method, rest: &str, headers: &HeaderMap) -> (Response, Duration) {
    let (fail_all, fail_api, mut delay) = {
        let st = shared.state();
        (st.fail_all, st.fail_api, st.api_latency)
    };
    if let Some(code) = fail_all.or(fail_api) {
        return (error(code, &default_message(code)), delay);
    }
    if method != Method::GET && method != Method::HEAD {
        return (error(405, "Method not allowed"), delay);
    }
    let rest = percent_decode(rest.trim_end_matches('/'));
    let fault = shared.state().api_scripts.get_mut(&rest).and_then(VecDeque::pop_front);
    match &fault {
        Some(Fault::Status {
            code,
            retry_after,
            body,
        }) => return (status_response(*code, *retry_after, body.clone()), delay),
        Some(Fault::Delay(d)) => delay += *d,
        Some(Fault::Html { status }) => return (html_response(*status), delay),
        Some(Fault::EchoAuth { code }) => return (echo_auth_response(*code, headers, &rest), delay),
        _ => {}
    }
    let response = if rest == "exchanges" {
        exchanges_list(shared).await
    } else {
        match rest.strip_prefix("exchanges/") {
            Some(id) if !id.is_empty() && !id.contains('/') => exchange_details(shared, id).await,
            _ => error(404, "Not found"),
        }
    };
    let byte_level = matches!(
        fault,
        Some(
            Fault::DropAfter(_) | Fault::Truncate(_) | Fault::CorruptCrc | Fault::Stall { .. } | Fault::Trickle { .. }
        )
    );
    if !byte_level {
        return (response, delay);
    }
    // A byte-level fault: stream the document through the same machinery as datasets.
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let plan = plan_for(fault.as_ref(), bytes.len() as u64);
    let len = plan.len;
    let mut resp = Response::from_parts(parts, Body::from_stream(body::stream(Source::Memory(bytes), plan)));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    (resp, delay)
}

/// Files known for `id`: in memory and under `root`.
async fn files_of(shared: &Arc<Shared>, id: &str) -> Vec<exchange::FileKey> {
    let mut files: Vec<exchange::FileKey> = shared
        .state()
        .files
        .keys()
        .filter_map(|k| exchange::parse_key(k))
        .filter(|(ex, _)| ex == id)
        .map(|(_, f)| f)
        .collect();
    if let Some(root) = shared.root.clone() {
        let id = id.to_owned();
        let on_disk = tokio::task::spawn_blocking(move || exchange::scan_root(&root, &id))
            .await
            .unwrap_or_default();
        files.extend(on_disk);
    }
    files
}

/// The declared metadata of `id` and its `exportedUntil`, read fresh on every request.
fn config_of(shared: &Shared, id: &str) -> (ExchangeConfig, Timestamp) {
    let cfg = shared.state().exchanges.get(id).cloned().unwrap_or_default();
    let until = cfg.exported_until.unwrap_or_else(exchange::start_of_today);
    (cfg, until)
}

async fn exchange_details(shared: &Arc<Shared>, id: &str) -> Response {
    let files = files_of(shared, id).await;
    let known = !files.is_empty() || exchange::EXCHANGES.contains(&id) || shared.state().exchanges.contains_key(id);
    if !known {
        let msg = format!("Invalid 'exchange' param: '{id}' is not a supported exchange");
        return error(404, &msg);
    }
    let (cfg, until) = config_of(shared, id);
    let doc = exchange::details(id, &files, &cfg, until);
    json_response(StatusCode::OK, &doc)
}

async fn exchanges_list(shared: &Arc<Shared>) -> Response {
    let mut ids: Vec<String> = exchange::EXCHANGES.iter().map(|s| (*s).to_owned()).collect();
    let mut extra: Vec<String> = {
        let st = shared.state();
        st.files
            .keys()
            .filter_map(|k| exchange::parse_key(k).map(|(ex, _)| ex))
            .chain(st.exchanges.keys().cloned())
            .collect()
    };
    if let Some(root) = shared.root.clone() {
        extra.extend(
            tokio::task::spawn_blocking(move || exchange::root_exchanges(&root))
                .await
                .unwrap_or_default(),
        );
    }
    extra.sort();
    extra.dedup();
    ids.extend(extra.into_iter().filter(|e| !exchange::EXCHANGES.contains(&e.as_str())));
    let mut list = Vec::with_capacity(ids.len());
    for id in &ids {
        let files = files_of(shared, id).await;
        let (cfg, until) = config_of(shared, id);
        list.push(exchange::summary(id, &files, &cfg, until));
    }
    json_response(StatusCode::OK, &serde_json::Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_component_round_trip() {
        assert_eq!(encode_uri_component("??USDT"), "%3F%3FUSDT");
        assert_eq!(encode_uri_component("BTC-PERPETUAL"), "BTC-PERPETUAL");
        assert_eq!(encode_uri_component("BTC/USD:x"), "BTC%2FUSD%3Ax");
        assert_eq!(percent_decode("%3F%3fUSDT"), "??USDT");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn dataset_paths_reject_traversal() {
        assert!(DatasetRequest::parse("deribit/trades/2024/01/02/BTC.csv.gz").is_some());
        assert!(DatasetRequest::parse("deribit/../2024/01/02/BTC.csv.gz").is_none());
        assert!(DatasetRequest::parse("deribit/trades/2024/01/02/..%2F..%2Fx.csv.gz").is_none());
        assert!(DatasetRequest::parse("deribit/trades/2024/01/02/.csv.gz").is_none());
        assert!(DatasetRequest::parse("deribit/trades/2024/01/BTC.csv.gz").is_none());
    }
}
