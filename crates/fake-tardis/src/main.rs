//! `fake-tardis`: serve a directory tree as a fake Tardis.dev, or generate one.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use fake_tardis::FakeTardis;
use fake_tardis::generate::{self, DayParams};
use jiff::civil::Date;

/// A fake Tardis.dev datasets + metadata API, and a generator of realistic day files.
#[derive(Debug, Parser)]
#[command(name = "fake-tardis", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve `{root}/{exchange}/{data_type}/{yyyy}/{mm}/{dd}/{symbol}.csv.gz` like
    /// datasets.tardis.dev, plus the /exchanges metadata API, until killed.
    Serve(ServeArgs),
    /// Write generated day files into a directory tree that `serve` can serve.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Directory tree to serve.
    #[arg(long)]
    root: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Delay before the response head of every dataset request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// A valid API key (repeatable). Without any, only first-of-month days can be fetched.
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
    /// Add `Content-Encoding: gzip` to dataset responses.
    #[arg(long)]
    content_encoding_gzip: bool,
    /// Delay before the response head of every metadata API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    api_latency_ms: u64,
    /// Queue a reproducible fault storm with this seed on every file under the root, with the
    /// default mix (30% 429 Retry-After 1, 20% 5xx, 20% dropped mid-body, 20% truncated,
    /// 10% ok; see `StormMix`).
    #[arg(long)]
    storm_seed: Option<u64>,
    /// With --storm-seed: the most faults per file before it is served normally.
    #[arg(long, default_value_t = 3, requires = "storm_seed")]
    storm_max_faults: usize,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Directory tree to write into (created if missing).
    #[arg(long)]
    root: PathBuf,
    /// Exchange id, e.g. deribit, binance-futures, bitmex.
    #[arg(long)]
    exchange: String,
    /// One of the nine Tardis data types, e.g. trades, incremental_book_L2.
    #[arg(long)]
    data_type: String,
    /// Comma-separated dataset symbols, e.g. BTC-PERPETUAL,ETH-PERPETUAL.
    #[arg(long, value_delimiter = ',', required = true)]
    symbols: Vec<String>,
    /// First UTC day, YYYY-MM-DD.
    #[arg(long)]
    from: Date,
    /// Number of consecutive days.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Data rows per file.
    #[arg(long)]
    rows: usize,
    /// Seed: the same parameters and seed give byte-identical files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write each file as this many concatenated gzip members (as Tardis's chunk uploads).
    #[arg(long, default_value_t = 1)]
    members: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Generate(args) => generate_files(&args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !args.root.is_dir() {
        bail!("--root {} is not a directory", args.root.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let mut builder = FakeTardis::builder()
            .root(&args.root)
            .addr(args.addr)
            .first_byte_latency(Duration::from_millis(args.latency_ms))
            .api_latency(Duration::from_millis(args.api_latency_ms))
            .content_encoding_gzip(args.content_encoding_gzip);
        for key in args.api_keys {
            builder = builder.api_key(key);
        }
        let server = builder
            .try_start()
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        if let Some(seed) = args.storm_seed {
            let mix = fake_tardis::StormMix::default().max_faults(args.storm_max_faults);
            server.script_storm(server.dataset_paths(), seed, &mix);
        }
        // One line, flushed, so a parent process can read the URLs and go.
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "datasets_url={} api_url={}",
            server.datasets_url(),
            server.api_url()
        )?;
        out.flush()?;
        drop(out);
        std::future::pending::<()>().await;
        drop(server);
        Ok(())
    })
}

/// What goes into a generated file's gzip comment: enough to tell that an existing file
/// was made with the same parameters (its path gives exchange, type, day and symbol).
fn marker(args: &GenerateArgs) -> String {
    format!(
        "fake-tardis generator v{} rows={} seed={} members={}",
        generate::GENERATOR_VERSION,
        args.rows,
        args.seed,
        args.members.max(1)
    )
}

fn generate_files(args: &GenerateArgs) -> anyhow::Result<()> {
    if generate::header(&args.data_type).is_none() {
        bail!(
            "unknown data type {:?}; expected one of {}",
            args.data_type,
            generate::DATA_TYPES.join(", ")
        );
    }
    let marker = marker(args);
    let mut out = std::io::stdout().lock();
    for i in 0..args.days {
        let date = args
            .from
            .checked_add(jiff::Span::new().days(i64::from(i)))
            .context("date out of range")?;
        for symbol in &args.symbols {
            let rel = FakeTardis::dataset_path(&args.exchange, &args.data_type, date, symbol);
            let path = args.root.join(&rel);
            if gzip_comment(&path).as_deref() == Some(marker.as_str()) {
                writeln!(out, "kept {} (same parameters)", path.display())?;
                continue;
            }
            let params = DayParams {
                exchange: args.exchange.clone(),
                symbol: symbol.clone(),
                date,
                rows: args.rows,
                seed: args.seed,
            };
            let start = Instant::now();
            let bytes = write_file(&path, &args.data_type, &params, args.members, &marker)
                .with_context(|| format!("writing {}", path.display()))?;
            writeln!(
                out,
                "wrote {} ({} rows, {} bytes, {:.2} s)",
                path.display(),
                args.rows,
                bytes,
                start.elapsed().as_secs_f64()
            )?;
        }
    }
    Ok(())
}

/// Streams the gzip into a temporary file beside the target, then renames it, so an
/// interrupted run never leaves a half-written file that looks finished.
fn write_file(path: &Path, data_type: &str, p: &DayParams, members: usize, marker: &str) -> anyhow::Result<u64> {
    let dir = path.parent().context("dataset path has a parent")?;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .context("dataset path has a file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> anyhow::Result<u64> {
        let file = std::fs::File::create(&tmp)?;
        let w = std::io::BufWriter::with_capacity(1 << 20, file);
        let w = generate::write_day_gz(data_type, p, members, Some(marker), w)?;
        let file = w.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        let len = file.metadata()?.len();
        drop(file);
        std::fs::rename(&tmp, path)?;
        Ok(len)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The FCOMMENT of a gzip file's first member, if it has one.
fn gzip_comment(path: &Path) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path).ok()?.take(1024).read_to_end(&mut head).ok()?;
    if head.len() < 10 || head[..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = head[3];
    let mut i = 10;
    if flags & 0x04 != 0 {
        let xlen = usize::from(u16::from_le_bytes([*head.get(i)?, *head.get(i + 1)?]));
        i += 2 + xlen;
    }
    if flags & 0x08 != 0 {
        i += head.get(i..)?.iter().position(|&b| b == 0)? + 1;
    }
    if flags & 0x10 == 0 {
        return None;
    }
    let rest = head.get(i..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}
