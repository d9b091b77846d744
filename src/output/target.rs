//! Where each output goes and which request it answers: the one naming rule of outputs, and
//! the check that an output never replaces the output of another request.
//!
//! A merged file's name identifies its request: `{exchange}_{data_type}_{symbols}_{from}_{to}.parquet`,
//! the symbols sorted and joined by `+`, or, past [`MAX_SYMBOLS_LABEL`] characters,
//! `{n}symbols-{hash}` (a stable hash of the sorted list, which the file's metadata lists).
//! Its footer records the request ([`keys::REQUEST`]); a file at the target path that records
//! another request (or is not a tickvault output at all) is refused unless `--overwrite`.
//!
//! The partitioned dataset is one table per data type: `DIR/{data_type}/exchange=E/date=YYYY-MM-DD/SYMBOL.parquet`.
//! A partition file is a chunk file; one cut to a range inside the day records the range
//! ([`keys::ROW_RANGE`]), so a partition of another range is refused the same way.

use std::path::{Path, PathBuf};

use twox_hash::XxHash3_64;

use crate::cache::chunk_file::{CHUNK_FORMAT, chunk_keys};
use crate::model::{ChunkKey, DataType, TimeRange, fs_component};
use crate::parquet::sealed::{keys as sealed_keys, read_footer};
use crate::run::plan::{Plan, Request};
use crate::settings::{DownloadSettings, OutputSpec, UsageError};

/// Key/value metadata names of outputs (besides the sealed file's own).
pub mod keys {
    /// The request a merged output answers ([`super::request_identity`]).
    pub const REQUEST: &str = "tickvault.request";
    /// The request's symbols, sorted, comma-separated.
    pub const SYMBOLS: &str = "tickvault.symbols";
    /// `false` when some of the output's days were not final (`--allow-incomplete`).
    pub const COMPLETE: &str = "tickvault.complete";
    /// `datasets.exportedUntil` of the exchange when the output was written (RFC 3339).
    pub const EXPORTED_UNTIL: &str = "tickvault.exported_until";
    /// `[from, to)` in µs of a partition cut to a range inside its day.
    pub const ROW_RANGE: &str = "tickvault.row_range";
}

/// `tickvault.format` of a merged output file.
pub const OUTPUT_FORMAT: &str = "output-v2";
/// Longest symbols part of a merged file's name before it becomes a count and a hash.
pub const MAX_SYMBOLS_LABEL: usize = 64;

/// The request's symbols, sorted (the order given does not change which request it is).
pub fn sorted_symbols(request: &Request) -> Vec<String> {
    let mut s = request.symbols.clone();
    s.sort();
    s
}

/// The request a merged output of `data_type` answers, as its footer records it.
pub fn request_identity(request: &Request, data_type: impl std::fmt::Display) -> String {
    format!(
        "exchange={} data_type={data_type} symbols={} from={} to={}",
        request.exchange,
        sorted_symbols(request).join(","),
        request.range.from,
        request.range.to
    )
}

/// The symbols part of a merged file's name.
pub fn symbols_label(request: &Request) -> String {
    let sorted = sorted_symbols(request);
    let joined = sorted.iter().map(|s| fs_component(s)).collect::<Vec<_>>().join("+");
    if joined.len() <= MAX_SYMBOLS_LABEL {
        return joined;
    }
    let hash = XxHash3_64::oneshot_with_seed(0, sorted.join("\n").as_bytes());
    format!("{}symbols-{:012x}", sorted.len(), hash >> 16)
}

/// The file a merged output of `data_type` goes to (a data type, or a derived kind such as
/// `bars-1m`): `{exchange}_{data_type}_{symbols}_{from}_{to}.parquet` in the output directory,
/// or the file given.
pub fn merged_path(output: &OutputSpec, request: &Request, data_type: impl std::fmt::Display) -> PathBuf {
    match output {
        OutputSpec::File(p) => p.clone(),
        OutputSpec::Dir(d) | OutputSpec::Partitioned(d) => d.join(format!(
            "{}_{data_type}_{}_{}_{}.parquet",
            request.exchange,
            symbols_label(request),
            TimeRange::label(request.range.from),
            TimeRange::label(request.range.to)
        )),
    }
}

/// The root of the partitioned table of `data_type` under `dir`.
pub fn table_root(dir: &Path, data_type: DataType) -> PathBuf {
    dir.join(data_type.as_str())
}

/// The partition file of a chunk under its table's root.
pub fn partition_path(root: &Path, key: &ChunkKey) -> PathBuf {
    root.join(format!("exchange={}", key.exchange))
        .join(format!("date={}", key.date))
        .join(format!("{}.parquet", fs_component(&key.symbol)))
}

/// The row range a partition of `key` records: `None` for the whole day.
pub fn partition_range(key: &ChunkKey, range: Option<(i64, i64)>) -> Option<(i64, i64)> {
    let start = key.day_start_micros();
    let end = start + 86_400_000_000;
    range
        .filter(|(from, to)| *from > start || *to < end)
        .map(|(from, to)| (from.max(start), to.min(end)))
}

/// The value of [`keys::ROW_RANGE`].
pub fn range_value((from, to): (i64, i64)) -> String {
    format!("{from}/{to}")
}

/// What a target path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nothing.
    Free,
    /// An output of the same request (it may be rewritten).
    Same,
    /// Something else, described.
    Other(String),
}

/// What the merged output path `path` holds, compared with `identity`.
pub fn merged_holder(path: &Path, identity: &str) -> Holder {
    if !path.exists() {
        return Holder::Free;
    }
    let Ok(footer) = read_footer(path) else {
        return Holder::Other("a file that is not a tickvault output".into());
    };
    match (footer.get(sealed_keys::FORMAT), footer.get(keys::REQUEST)) {
        (Some(OUTPUT_FORMAT), Some(r)) if r == identity => Holder::Same,
        (Some(OUTPUT_FORMAT), Some(r)) => Holder::Other(format!("the output of another request ({r})")),
        (Some(format), _) => Holder::Other(format!("a tickvault file of another kind or version ({format})")),
        (None, _) => Holder::Other("a Parquet file that tickvault did not write".into()),
    }
}

/// What the partition file `path` of `key` holds, compared with the rows asked for.
pub fn partition_holder(path: &Path, key: &ChunkKey, range: Option<(i64, i64)>) -> Holder {
    if !path.exists() {
        return Holder::Free;
    }
    let Ok(footer) = read_footer(path) else {
        return Holder::Other("a file that is not a tickvault partition".into());
    };
    if footer.get(sealed_keys::FORMAT) != Some(CHUNK_FORMAT)
        || footer.get(chunk_keys::CHUNK) != Some(key.to_string().as_str())
    {
        return Holder::Other(format!("a file that is not the partition of {key}"));
    }
    let wanted = partition_range(key, range).map(range_value);
    match footer.get(keys::ROW_RANGE) {
        held if held == wanted.as_deref() => Holder::Same,
        Some(r) => Holder::Other(format!("the rows of {key} in the range {r} (µs)")),
        None => Holder::Other(format!("the whole day of {key}")),
    }
}

/// The refusal of a path held by another request.
pub fn refusal(path: &Path, what: &str) -> String {
    format!(
        "--output {} holds {what}; pass --overwrite to replace it, or choose another --output",
        path.display()
    )
}

/// Checks, before the run, that no output of the plan would replace another request's
/// output (unless `--overwrite`): a mistake costs no transfer. The writers check again, under
/// the output lock, in case another process wrote meanwhile.
///
/// # Errors
/// [`UsageError`] naming the path and what it holds.
pub fn check_targets(settings: &DownloadSettings, plan: &Plan) -> Result<(), UsageError> {
    if settings.overwrite {
        return Ok(());
    }
    let request = &settings.request;
    let range = (!request.range.is_whole_days()).then(|| request.range.micros());
    for (data_type, keys) in &plan.per_type {
        let held = match &settings.output {
            OutputSpec::Partitioned(dir) => {
                let root = table_root(dir, *data_type);
                keys.iter().filter(|k| !plan.is_withheld(k)).find_map(|k| {
                    let path = partition_path(&root, k);
                    match partition_holder(&path, k, range) {
                        Holder::Other(what) => Some((path, what)),
                        _ => None,
                    }
                })
            }
            // A merged output with withheld days is not written at all.
            _ if keys.iter().any(|k| plan.is_withheld(k)) => None,
            spec => {
                let path = merged_path(spec, request, *data_type);
                match merged_holder(&path, &request_identity(request, *data_type)) {
                    Holder::Other(what) => Some((path, what)),
                    _ => None,
                }
            }
        };
        if let Some((path, what)) = held {
            return Err(UsageError(refusal(&path, &what)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_instant;

    fn request(symbols: &[&str]) -> Request {
        Request {
            exchange: "binance-futures".into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            data_types: vec![DataType::Trades],
            range: TimeRange::new(
                parse_instant("--from", "2024-03-01").unwrap(),
                Some(parse_instant("--to", "2024-03-04").unwrap()),
            )
            .unwrap(),
        }
    }

    #[test]
    fn merged_names_identify_the_request() {
        let dir = OutputSpec::Dir(PathBuf::from("out"));
        let a = merged_path(&dir, &request(&["ETHUSDT", "BTCUSDT"]), DataType::Trades);
        assert_eq!(
            a,
            Path::new("out/binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-04.parquet")
        );
        assert_eq!(
            a,
            merged_path(&dir, &request(&["BTCUSDT", "ETHUSDT"]), DataType::Trades)
        );
        assert_ne!(a, merged_path(&dir, &request(&["BTCUSDT"]), DataType::Trades));
        let many: Vec<String> = (0..30).map(|i| format!("SYM{i:02}USDT")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let label = symbols_label(&request(&refs));
        assert!(
            label.starts_with("30symbols-") && label.len() == "30symbols-".len() + 12,
            "{label}"
        );
        let mut reversed = refs.clone();
        reversed.reverse();
        assert_eq!(label, symbols_label(&request(&reversed)), "stable under reordering");
        assert_eq!(
            request_identity(&request(&["ETHUSDT", "BTCUSDT"]), DataType::Trades),
            "exchange=binance-futures data_type=trades symbols=BTCUSDT,ETHUSDT from=2024-03-01T00:00:00Z to=2024-03-04T00:00:00Z"
        );
        let file = OutputSpec::File(PathBuf::from("x.parquet"));
        assert_eq!(
            merged_path(&file, &request(&["A"]), DataType::Trades),
            Path::new("x.parquet")
        );
    }

    #[test]
    fn partitions_live_under_one_root_per_data_type() {
        let key = ChunkKey::new(
            "deribit",
            DataType::Quotes,
            "BTC-PERPETUAL",
            jiff::civil::date(2024, 3, 2),
        );
        let root = table_root(Path::new("lake"), DataType::Quotes);
        assert_eq!(
            partition_path(&root, &key),
            Path::new("lake/quotes/exchange=deribit/date=2024-03-02/BTC-PERPETUAL.parquet")
        );
        let day = key.day_start_micros();
        assert_eq!(partition_range(&key, None), None);
        assert_eq!(partition_range(&key, Some((day - 5, day + 86_400_000_000))), None);
        assert_eq!(
            partition_range(&key, Some((day + 5, day + 10))),
            Some((day + 5, day + 10))
        );
        assert_eq!(partition_range(&key, Some((day - 5, day + 10))), Some((day, day + 10)));
    }
}
