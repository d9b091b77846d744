//! The metadata API (`/v1/exchanges`, `/v1/exchanges/{id}`) as tickvault's validation sees
//! it: declared symbols, delistings, exchange-level dates, and the API failing on its own.

use std::time::{Duration, Instant};

use fake_tardis::{FakeTardis, Fault, SymbolGroup, SymbolMeta};
use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

async fn json(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

async fn details(t: &FakeTardis, id: &str) -> Value {
    json(get(&format!("{}/exchanges/{id}", t.api_url())).await).await
}

async fn list_item(t: &FakeTardis, id: &str) -> Value {
    let list = json(get(&format!("{}/exchanges", t.api_url())).await).await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
        .clone()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn symbol<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["datasets"]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in datasets.symbols: {doc}"))
}

#[tokio::test]
async fn declared_symbols_appear_without_files() {
    let t = FakeTardis::start().await;
    t.add_symbol(
        "deribit",
        SymbolMeta::new("BTC-PERPETUAL", "perpetual", date(2019, 3, 30)),
    );
    t.add_symbol(
        "deribit",
        SymbolMeta::new("BTC-29MAR19", "future", date(2018, 12, 28))
            .until(date(2019, 3, 30))
            .with_data_types(["trades", "incremental_book_L2"]),
    );
    t.add_symbol("deribit", SymbolMeta::grouped(SymbolGroup::Options, date(2019, 3, 30)));
    // A file of a declared symbol adds its type; a file alone adds its symbol.
    t.add_csv("deribit", "options_chain", date(2024, 1, 2), "BTC-PERPETUAL", "x");
    t.add_csv("deribit", "trades", date(2024, 1, 2), "ETH-PERPETUAL", "x");

    let doc = details(&t, "deribit").await;
    let perp = symbol(&doc, "BTC-PERPETUAL");
    assert_eq!(perp["type"], "perpetual");
    assert_eq!(perp["availableSince"], "2019-03-30T00:00:00.000Z");
    assert!(perp.get("availableTo").is_none(), "absent while listed: {perp}");
    let types = perp["dataTypes"].as_array().unwrap();
    for ty in ["trades", "incremental_book_L2", "derivative_ticker", "options_chain"] {
        assert!(types.contains(&json!(ty)), "{ty} in {types:?}");
    }
    let fut = symbol(&doc, "BTC-29MAR19");
    assert_eq!(
        fut,
        &json!({
            "id": "BTC-29MAR19",
            "type": "future",
            "availableSince": "2018-12-28T00:00:00.000Z",
            "availableTo": "2019-03-30T00:00:00.000Z",
            "dataTypes": ["trades", "incremental_book_L2"],
        })
    );
    let opts = symbol(&doc, "OPTIONS");
    assert_eq!(opts["type"], "option");
    assert_eq!(
        opts["dataTypes"],
        json!(["trades", "quotes", "liquidations", "options_chain"])
    );
    assert_eq!(
        symbol(&doc, "ETH-PERPETUAL")["availableSince"],
        "2024-01-02T00:00:00.000Z"
    );
    // Grouped ids are dataset symbols only, not instruments.
    let listed: Vec<&str> = doc["availableSymbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["BTC-29MAR19", "BTC-PERPETUAL", "ETH-PERPETUAL"]);
    let delisted = &doc["availableSymbols"][0];
    assert_eq!(delisted["availableTo"], "2019-03-30T00:00:00.000Z");
    assert_eq!(doc["datasets"]["exportedFrom"], "2018-12-28T00:00:00.000Z");
    assert_eq!(doc["availableSince"], "2018-12-28T00:00:00.000Z");

    // Declared only: no file is served for it.
    let u = t.dataset_url("deribit", "trades", date(2024, 1, 1), "BTC-29MAR19");
    assert_eq!(get(&u).await.status(), 404);

    // Declaring makes an exchange the fake never heard of known, in both endpoints.
    let err = get(&format!("{}/exchanges/my-venue", t.api_url())).await;
    assert_eq!(err.status(), 404);
    t.add_symbol("my-venue", SymbolMeta::new("ABC-USD", "spot", date(2021, 6, 1)));
    let doc = details(&t, "my-venue").await;
    assert_eq!(symbol(&doc, "ABC-USD")["type"], "spot");
    assert_eq!(
        list_item(&t, "my-venue").await["availableSince"],
        "2021-06-01T00:00:00.000Z"
    );

    // Declaring again replaces.
    t.add_symbol(
        "my-venue",
        SymbolMeta::new("ABC-USD", "spot", date(2021, 6, 1)).until(date(2023, 1, 1)),
    );
    let doc = details(&t, "my-venue").await;
    assert_eq!(symbol(&doc, "ABC-USD")["availableTo"], "2023-01-01T00:00:00.000Z");
    assert_eq!(doc["datasets"]["symbols"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn exchange_level_dates_can_be_overridden() {
    let t = FakeTardis::start().await;
    t.add_csv("ftx", "trades", date(2020, 5, 2), "BTC-PERP", "x");
    let doc = details(&t, "ftx").await;
    assert_eq!(doc["availableSince"], "2020-05-02T00:00:00.000Z");
    assert!(doc.get("availableTo").is_none() && doc.get("delisted").is_none());

    t.set_available_since("ftx", ts("2019-08-01T00:00:00Z"));
    t.set_available_to("ftx", Some(ts("2022-11-13T00:00:00Z")));
    t.set_exported_from("ftx", ts("2019-08-02T00:00:00Z"));
    t.set_exported_until("ftx", ts("2022-11-13T00:00:00Z"));
    let doc = details(&t, "ftx").await;
    assert_eq!(doc["availableSince"], "2019-08-01T00:00:00.000Z");
    assert_eq!(doc["availableTo"], "2022-11-13T00:00:00.000Z");
    assert_eq!(doc["delisted"], true);
    assert_eq!(doc["datasets"]["exportedFrom"], "2019-08-02T00:00:00.000Z");
    assert_eq!(doc["datasets"]["exportedUntil"], "2022-11-13T00:00:00.000Z");
    let item = list_item(&t, "ftx").await;
    assert_eq!(item["availableSince"], "2019-08-01T00:00:00.000Z");
    assert_eq!(item["availableTo"], "2022-11-13T00:00:00.000Z");
    assert_eq!(item["delisted"], true);

    t.set_available_to("ftx", None);
    let doc = details(&t, "ftx").await;
    assert!(doc.get("availableTo").is_none() && doc.get("delisted").is_none());
    assert!(list_item(&t, "ftx").await.get("availableTo").is_none());
}

#[tokio::test]
async fn exported_until_moves_between_polls_on_one_connection() {
    let t = FakeTardis::start().await;
    let c = client();
    let u = format!("{}/exchanges/deribit", t.api_url());
    let mut seen = Vec::new();
    for day in ["2024-03-05", "2024-03-06", "2024-03-07"] {
        t.set_exported_until("deribit", ts(&format!("{day}T00:00:00Z")));
        let v: Value = serde_json::from_slice(&c.get(&u).send().await.unwrap().bytes().await.unwrap()).unwrap();
        seen.push(v["datasets"]["exportedUntil"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        [
            "2024-03-05T00:00:00.000Z",
            "2024-03-06T00:00:00.000Z",
            "2024-03-07T00:00:00.000Z"
        ]
    );
    // Moved from another task while a client is waiting on a slow API.
    t.set_api_latency(Duration::from_millis(300));
    let mover = {
        let t = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            t.set_exported_until("deribit", ts("2024-03-08T06:00:00Z"));
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    mover.await.unwrap();
    let v: Value = serde_json::from_slice(&c.get(&u).send().await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(v["datasets"]["exportedUntil"], "2024-03-08T06:00:00.000Z");
}

#[tokio::test]
async fn the_api_fails_on_its_own_while_datasets_work() {
    let t = FakeTardis::start().await;
    t.add_csv("deribit", "trades", date(2024, 1, 1), "BTC-PERPETUAL", "csv");
    let file = t.dataset_url("deribit", "trades", date(2024, 1, 1), "BTC-PERPETUAL");
    for code in [503, 429, 500] {
        t.fail_api(Some(code));
        for path in ["exchanges", "exchanges/deribit", "exchanges/nope"] {
            let r = get(&format!("{}/{path}", t.api_url())).await;
            assert_eq!(r.status().as_u16(), code, "{path}");
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert_eq!(v["code"], code);
            assert!(v["message"].is_string());
        }
        assert_eq!(get(&file).await.status(), 200, "datasets unaffected");
    }
    t.fail_api(None);
    assert_eq!(details(&t, "deribit").await["id"], "deribit");
}

#[tokio::test]
async fn api_latency_applies_to_the_api_only() {
    let ms = Duration::from_millis;
    // The latency is long and the bounds generous, so a loaded machine cannot flip the result.
    let t = FakeTardis::builder().api_latency(ms(2000)).start().await;
    t.add_csv("deribit", "trades", date(2024, 1, 1), "BTC-PERPETUAL", "csv");
    let file = t.dataset_url("deribit", "trades", date(2024, 1, 1), "BTC-PERPETUAL");
    let start = Instant::now();
    details(&t, "deribit").await;
    assert!(start.elapsed() >= ms(2000));
    // Errors are late too.
    t.fail_api(Some(503));
    let start = Instant::now();
    assert_eq!(get(&format!("{}/exchanges", t.api_url())).await.status(), 503);
    assert!(start.elapsed() >= ms(2000));
    t.fail_api(None);
    let start = Instant::now();
    assert_eq!(get(&file).await.status(), 200);
    assert!(start.elapsed() < ms(1500));
    t.set_api_latency(Duration::ZERO);
    let start = Instant::now();
    details(&t, "deribit").await;
    assert!(start.elapsed() < ms(1500));
}

#[tokio::test]
async fn api_requests_are_recorded_apart() {
    let t = FakeTardis::start().await;
    t.add_csv("deribit", "trades", date(2024, 1, 1), "BTC-PERPETUAL", "csv");
    get(&t.dataset_url("deribit", "trades", date(2024, 1, 1), "BTC-PERPETUAL")).await;
    details(&t, "deribit").await;
    get(&format!("{}/exchanges", t.api_url())).await;
    t.fail_api(Some(500));
    get(&format!("{}/exchanges/deribit", t.api_url())).await;
    let api = t.api_requests();
    let seen: Vec<(&str, u16)> = api.iter().map(|r| (r.path.as_str(), r.status)).collect();
    assert_eq!(
        seen,
        [
            ("/api/v1/exchanges/deribit", 200),
            ("/api/v1/exchanges", 200),
            ("/api/v1/exchanges/deribit", 500)
        ]
    );
    assert_eq!(t.dataset_requests().len(), 1);
    assert_eq!(t.requests().len(), 4);
}

#[tokio::test]
async fn api_paths_take_scripted_faults() {
    let t = FakeTardis::start().await;
    t.script_api(
        "/api/v1/exchanges/deribit",
        [
            Fault::too_many_requests(Some(2)),
            Fault::Truncate(20),
            Fault::html(),
            Fault::Delay(Duration::from_millis(300)),
        ],
    );
    let u = format!("{}/exchanges/deribit", t.api_url());
    let r = get(&u).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let r = get(&u).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(20));
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 20);
    assert!(serde_json::from_slice::<Value>(&body).is_err(), "cut JSON");
    let r = get(&u).await;
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let start = Instant::now();
    details(&t, "deribit").await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    // Other paths were never affected, and the script is used up.
    assert_eq!(get(&format!("{}/exchanges", t.api_url())).await.status(), 200);
    details(&t, "deribit").await;
}
