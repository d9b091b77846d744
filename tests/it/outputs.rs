//! Outputs never clobber: a merged file's name identifies its request, a path that holds
//! another request's output is refused (exit 2) unless --overwrite, the identical request is
//! a no-op, and two processes writing one path never interleave.

use crate::completeness::kv;
use crate::support::{Env, date, read_parquet};

/// Serves `symbols` for 2024-03-01 and 2024-03-02.
fn serve(env: &Env, symbols: &[&str]) -> Vec<String> {
    let mut csvs = Vec::new();
    for (i, sym) in symbols.iter().enumerate() {
        for day in ["2024-03-01", "2024-03-02"] {
            csvs.push(env.serve_generated("binance-futures", "trades", sym, date(day), 1_000, i as u64));
        }
    }
    csvs
}

fn args<'a>(symbols: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "-e",
        "binance-futures",
        "-s",
        symbols,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
        "-o",
        out,
        "--json",
    ];
    a.extend_from_slice(extra);
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn two_requests_into_one_folder_keep_both_files() {
    let env = Env::new().await;
    serve(&env, &["BTCUSDT", "ETHUSDT"]);
    let out = env.out.to_str().unwrap();
    env.download(&args("BTCUSDT", out, &[])).await.ok();
    env.download(&args("ETHUSDT", out, &[])).await.ok();
    env.download(&args("ethusdt,btcusdt", out, &[])).await.ok();
    let names: Vec<String> = env
        .out_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-03.parquet",
            "binance-futures_trades_BTCUSDT_2024-03-01_2024-03-03.parquet",
            "binance-futures_trades_ETHUSDT_2024-03-01_2024-03-03.parquet",
        ]
    );
    for (name, rows) in [
        ("binance-futures_trades_BTCUSDT_2024-03-01_2024-03-03.parquet", 2_000),
        ("binance-futures_trades_ETHUSDT_2024-03-01_2024-03-03.parquet", 2_000),
    ] {
        let p = env.out.join(name);
        assert_eq!(read_parquet(&p).1.len(), rows, "{name} intact");
        let meta = kv(&p);
        assert_eq!(meta["tickvault.symbols"], name.split('_').nth(2).unwrap());
        assert!(meta["tickvault.request"].starts_with("exchange=binance-futures data_type=trades symbols="));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn many_symbols_are_named_by_a_stable_hash_and_listed_in_the_file() {
    let env = Env::new().await;
    let symbols: Vec<String> = (0..12).map(|i| format!("ALT{i:02}USDT")).collect();
    let refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
    serve(&env, &refs);
    let list = symbols.join(",");
    let run = env.download(&args(&list, env.out.to_str().unwrap(), &[])).await;
    run.ok();
    let path = run.json()["outputs"][0]["path"].as_str().unwrap().to_string();
    let name = std::path::Path::new(&path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        name.starts_with("binance-futures_trades_12symbols-") && name.ends_with("_2024-03-01_2024-03-03.parquet"),
        "{name}"
    );
    assert_eq!(kv(std::path::Path::new(&path))["tickvault.symbols"], list);
    // The same set in another order is the same request, at the same path.
    let reversed: Vec<&str> = refs.iter().rev().copied().collect();
    let again = env
        .download(&args(&reversed.join(","), env.out.to_str().unwrap(), &[]))
        .await;
    again.ok();
    assert_eq!(again.json()["outputs"][0]["path"].as_str().unwrap(), path);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_different_request_onto_an_existing_file_is_refused_unless_overwrite() {
    let env = Env::new().await;
    serve(&env, &["BTCUSDT", "ETHUSDT"]);
    let file = env.out.join("trades.parquet");
    let f = file.to_str().unwrap();
    env.download(&args("BTCUSDT", f, &[])).await.ok();
    let before = std::fs::read(&file).unwrap();
    env.tardis.clear_requests();

    let run = env.download(&args("ETHUSDT", f, &[])).await;
    run.code(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with(&format!("error: --output {f} holds the output of another request (exchange=binance-futures data_type=trades symbols=BTCUSDT from=")),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("pass --overwrite to replace it, or choose another --output"));
    assert_eq!(env.dataset_requests(), 0, "refused before any download");
    assert!(std::fs::read(&file).unwrap() == before, "untouched");

    // The identical request stays a no-op.
    let same = env.download(&args("BTCUSDT", f, &[])).await;
    same.ok();
    assert_eq!(same.json()["outputs"][0]["status"], "up_to_date");

    // --overwrite replaces it.
    let over = env.download(&args("ETHUSDT", f, &["--overwrite"])).await;
    over.ok();
    assert_eq!(over.json()["outputs"][0]["status"], "written");
    assert_eq!(kv(&file)["tickvault.symbols"], "ETHUSDT");

    // A file tickvault did not write is refused too.
    let foreign = env.out.join("notes.parquet");
    std::fs::write(&foreign, b"not parquet at all").unwrap();
    env.download(&args("ETHUSDT", foreign.to_str().unwrap(), &[]))
        .await
        .code(2)
        .stderr_has("holds a file that is not a tickvault output");
    assert_eq!(std::fs::read(&foreign).unwrap(), b"not parquet at all");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_of_another_range_is_refused_unless_overwrite() {
    let env = Env::new().await;
    serve(&env, &["BTCUSDT"]);
    let out = env.out.to_str().unwrap();
    let whole = [
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
    ];
    let mut a = whole.to_vec();
    a.extend(["-o", out, "--partitioned"]);
    env.download(&a).await.ok();
    // The same days again: nothing to do.
    env.download(&a).await.ok();
    // Half of the first day into the same table would cut a whole day short: refused.
    let mut half = vec![
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT",
        "--from",
        "2024-03-01T12:00:00Z",
        "--to",
        "2024-03-02",
    ];
    half.extend(["-o", out, "--partitioned"]);
    env.download(&half)
        .await
        .code(2)
        .stderr_has("date=2024-03-01/BTCUSDT.parquet holds the whole day of binance-futures/trades/BTCUSDT/2024-03-01");
    half.push("--overwrite");
    env.download(&half).await.ok();
    let p = env
        .out
        .join("trades/exchange=binance-futures/date=2024-03-01/BTCUSDT.parquet");
    assert!(kv(&p).contains_key("tickvault.row_range"));
    assert!(read_parquet(&p).1.len() < 1_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_writing_one_path_never_interleave() {
    let env = Env::with(
        fake_tardis::FakeTardis::builder()
            .api_key(crate::support::KEY)
            .first_byte_latency(std::time::Duration::from_millis(100)),
    )
    .await;
    serve(&env, &["BTCUSDT", "ETHUSDT"]);
    let file = env.out.join("trades.parquet");
    let f = file.to_str().unwrap();
    // The same request twice at once: one writes, the other finds it done (or writes the
    // same bytes after it); both succeed.
    let same = args("BTCUSDT", f, &[]);
    let (a, b) = tokio::join!(env.download(&same), env.download(&same));
    a.ok();
    b.ok();
    assert_eq!(read_parquet(&file).1.len(), 2_000);
    // Two different requests at once onto one file: one wins, the other is refused.
    let g = env.out.join("other.parquet");
    let g = g.to_str().unwrap();
    let (btc, eth) = (args("BTCUSDT", g, &[]), args("ETHUSDT", g, &[]));
    let (a, b) = tokio::join!(env.download(&btc), env.download(&eth));
    let mut codes = [a.code, b.code];
    codes.sort_unstable();
    assert_eq!(codes, [0, 2], "{}\n{}", a.stderr, b.stderr);
    let loser = if a.code == 2 { &a } else { &b };
    assert!(
        loser.stderr.contains("holds the output of another request"),
        "{}",
        loser.stderr
    );
    let winner = if a.code == 0 { "BTCUSDT" } else { "ETHUSDT" };
    let g = std::path::Path::new(g);
    assert_eq!(kv(g)["tickvault.symbols"], winner);
    assert_eq!(read_parquet(g).1.len(), 2_000);
    let leftovers: Vec<_> = env
        .out_files()
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "parquet"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
