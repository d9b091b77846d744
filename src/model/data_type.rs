//! The nine Tardis dataset types and their typed Arrow schemas.
//!
//! Column names and order are exactly the CSV headers Tardis publishes
//! (<https://docs.tardis.dev/downloadable-csv-files/data-types>); types follow the design:
//! timestamps are `Timestamp(Microsecond, "UTC")`, identifiers and enums `Utf8`,
//! `is_snapshot` `Boolean`, every other value `Float64`. A column Tardis may leave empty is
//! nullable and an empty cell becomes null.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};

/// One of the nine Tardis dataset types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    /// `trades`: individual trades.
    Trades,
    /// `incremental_book_L2`: order book level updates (with start-of-day snapshots).
    IncrementalBookL2,
    /// `book_snapshot_25`: the top 25 levels of each side.
    BookSnapshot25,
    /// `book_snapshot_5`: the top 5 levels of each side.
    BookSnapshot5,
    /// `quotes`: best bid and ask.
    Quotes,
    /// `book_ticker`: the exchange's best bid/ask feed.
    BookTicker,
    /// `derivative_ticker`: funding, open interest, mark and index prices.
    DerivativeTicker,
    /// `liquidations`: forced orders.
    Liquidations,
    /// `options_chain`: option quotes and greeks.
    OptionsChain,
}

/// How big the pieces of a data type's files are, by its width (measured in issue 4: 8 columns
/// for trades, 104 for `book_snapshot_25`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Rows per Arrow record batch while decoding: about 4–8 MB of Arrow data per batch, so
    /// that wide types do not make huge batches.
    pub batch_rows: usize,
    /// Rows per Parquet row group: about 30 MiB of Arrow data. A writer buffers a row group's
    /// encoded pages and a reader loads one whole, so this bounds their memory.
    pub row_group_rows: usize,
    /// zstd level of merged outputs: 3 (measured on trades: 15% smaller than 1 for 10% more
    /// time); 1 for the widest type, whose one-context-per-column at level 3 was the bulk of a
    /// writer's memory.
    pub output_zstd_level: i32,
    /// Limit of one Parquet data or dictionary page, per column: 1 MiB (the default) for
    /// narrow types, less for wide ones so that a writer's buffers stay around 30 MB.
    pub page_bytes: usize,
}

/// How a CSV column is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Integer microseconds since the epoch in the CSV, `Timestamp(µs, UTC)` in Arrow.
    Timestamp,
    /// Text.
    Utf8,
    /// `true`/`false`.
    Boolean,
    /// A number.
    Float64,
}

/// One column of a dataset: its Tardis name, kind and whether Tardis may leave it empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The Tardis column name.
    pub name: String,
    /// How the column is typed.
    pub kind: ColumnKind,
    /// Whether Tardis may leave it empty (an empty cell is null).
    pub nullable: bool,
}

impl Column {
    fn new(name: impl Into<String>, kind: ColumnKind, nullable: bool) -> Self {
        Self {
            name: name.into(),
            kind,
            nullable,
        }
    }
}

/// The name of the column every dataset is split and ordered by (arrival time).
pub const LOCAL_TIMESTAMP: &str = "local_timestamp";
/// Index of `local_timestamp` in every schema (`exchange,symbol,timestamp,local_timestamp,…`).
pub const LOCAL_TIMESTAMP_INDEX: usize = 3;

impl DataType {
    /// All nine types, in the order Tardis documents them.
    pub const ALL: [DataType; 9] = [
        DataType::Trades,
        DataType::IncrementalBookL2,
        DataType::BookSnapshot25,
        DataType::BookSnapshot5,
        DataType::Quotes,
        DataType::BookTicker,
        DataType::DerivativeTicker,
        DataType::Liquidations,
        DataType::OptionsChain,
    ];

    /// The Tardis name, as used in dataset URLs and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Trades => "trades",
            DataType::IncrementalBookL2 => "incremental_book_L2",
            DataType::BookSnapshot25 => "book_snapshot_25",
            DataType::BookSnapshot5 => "book_snapshot_5",
            DataType::Quotes => "quotes",
            DataType::BookTicker => "book_ticker",
            DataType::DerivativeTicker => "derivative_ticker",
            DataType::Liquidations => "liquidations",
            DataType::OptionsChain => "options_chain",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The columns of this type's CSV, in header order.
    pub fn columns(self) -> &'static [Column] {
        static COLUMNS: OnceLock<Vec<Vec<Column>>> = OnceLock::new();
        &COLUMNS.get_or_init(|| Self::ALL.iter().map(|t| t.build_columns()).collect())[self.index()]
    }

    /// The expected header line (without the line end).
    pub fn header(self) -> String {
        self.columns()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The Arrow schema of the output (timestamps typed as `Timestamp(µs, UTC)`).
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        SCHEMAS.get_or_init(|| Self::ALL.iter().map(|t| t.build_schema()).collect())[self.index()].clone()
    }

    /// How big the pieces of this type's files are (see [`Sizing`]).
    pub fn sizing(self) -> Sizing {
        const K: usize = 1024;
        let (batch_rows, row_group_rows, output_zstd_level, page_bytes) = match self {
            DataType::BookSnapshot25 => (4 * K, 128 * K, 1, 128 * K),
            DataType::OptionsChain => (16 * K, 256 * K, 3, 512 * K),
            DataType::BookSnapshot5 => (32 * K, 256 * K, 3, 512 * K),
            DataType::DerivativeTicker => (32 * K, 256 * K, 3, K * K),
            _ => (64 * K, 512 * K, 3, K * K),
        };
        Sizing {
            batch_rows,
            row_group_rows,
            output_zstd_level,
            page_bytes,
        }
    }

    /// Rows per Arrow record batch while decoding.
    pub fn batch_rows(self) -> usize {
        self.sizing().batch_rows
    }

    /// Rows per Parquet row group.
    pub fn row_group_rows(self) -> usize {
        self.sizing().row_group_rows
    }

    fn build_schema(self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|c| {
                let ty = match c.kind {
                    ColumnKind::Timestamp => timestamp_type(),
                    ColumnKind::Utf8 => ArrowType::Utf8,
                    ColumnKind::Boolean => ArrowType::Boolean,
                    ColumnKind::Float64 => ArrowType::Float64,
                };
                Field::new(&c.name, ty, c.nullable)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    fn build_columns(self) -> Vec<Column> {
        use ColumnKind::{Boolean as B, Float64 as F, Timestamp as T, Utf8 as U};
        let mut cols = vec![
            Column::new("exchange", U, false),
            Column::new("symbol", U, false),
            Column::new("timestamp", T, false),
            Column::new(LOCAL_TIMESTAMP, T, false),
        ];
        // (name, kind, nullable) after the four key columns.
        let rest: &[(&str, ColumnKind, bool)] = match self {
            // `id` is empty when the exchange gives no trade id.
            DataType::Trades => &[
                ("id", U, true),
                ("side", U, false),
                ("price", F, false),
                ("amount", F, false),
            ],
            DataType::IncrementalBookL2 => &[
                ("is_snapshot", B, false),
                ("side", U, false),
                ("price", F, false),
                ("amount", F, false),
            ],
            // Each side is empty when that side of the book is empty.
            DataType::Quotes | DataType::BookTicker => &[
                ("ask_amount", F, true),
                ("ask_price", F, true),
                ("bid_price", F, true),
                ("bid_amount", F, true),
            ],
            // Rows often fill only some fields.
            DataType::DerivativeTicker => &[
                ("funding_timestamp", T, true),
                ("funding_rate", F, true),
                ("predicted_funding_rate", F, true),
                ("open_interest", F, true),
                ("last_price", F, true),
                ("index_price", F, true),
                ("mark_price", F, true),
            ],
            // `id` is usually empty for liquidations.
            DataType::Liquidations => &[
                ("id", U, true),
                ("side", U, false),
                ("price", F, false),
                ("amount", F, false),
            ],
            // Any column but the keys may be empty (tardis-node `OptionSummary`).
            DataType::OptionsChain => &[
                ("type", U, true),
                ("strike_price", F, true),
                ("expiration", T, true),
                ("open_interest", F, true),
                ("last_price", F, true),
                ("bid_price", F, true),
                ("bid_amount", F, true),
                ("bid_iv", F, true),
                ("ask_price", F, true),
                ("ask_amount", F, true),
                ("ask_iv", F, true),
                ("mark_price", F, true),
                ("mark_iv", F, true),
                ("underlying_index", U, true),
                ("underlying_price", F, true),
                ("delta", F, true),
                ("gamma", F, true),
                ("vega", F, true),
                ("theta", F, true),
                ("rho", F, true),
            ],
            DataType::BookSnapshot25 | DataType::BookSnapshot5 => &[],
        };
        cols.extend(rest.iter().map(|(n, k, null)| Column::new(*n, *k, *null)));
        let levels = match self {
            DataType::BookSnapshot25 => 25,
            DataType::BookSnapshot5 => 5,
            _ => 0,
        };
        // Levels interleave ask then bid; deeper levels are empty when the book is thinner.
        for i in 0..levels {
            for name in [
                "asks[{i}].price",
                "asks[{i}].amount",
                "bids[{i}].price",
                "bids[{i}].amount",
            ] {
                cols.push(Column::new(name.replace("{i}", &i.to_string()), F, true));
            }
        }
        cols
    }
}

/// `Timestamp(Microsecond, "UTC")`.
fn timestamp_type() -> ArrowType {
    ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a name that is not one of the nine types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data type '{0}' (expected one of: {list})", list = DataType::ALL.map(DataType::as_str).join(", "))]
pub struct UnknownDataType(pub String);

impl FromStr for DataType {
    type Err = UnknownDataType;

    /// Accepts the Tardis name in any letter case (`incremental_book_l2` is accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownDataType(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_tardis() {
        assert_eq!(
            DataType::Trades.header(),
            "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
        );
        assert_eq!(
            DataType::IncrementalBookL2.header(),
            "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
        );
        assert_eq!(
            DataType::Quotes.header(),
            "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
        );
        assert_eq!(DataType::BookTicker.header(), DataType::Quotes.header());
        assert_eq!(
            DataType::DerivativeTicker.header(),
            "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,open_interest,last_price,index_price,mark_price"
        );
        assert_eq!(
            DataType::OptionsChain.header(),
            "exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,underlying_index,underlying_price,delta,gamma,vega,theta,rho"
        );
        assert_eq!(
            DataType::BookSnapshot5.header(),
            "exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,asks[1].price,asks[1].amount,bids[1].price,bids[1].amount,asks[2].price,asks[2].amount,bids[2].price,bids[2].amount,asks[3].price,asks[3].amount,bids[3].price,bids[3].amount,asks[4].price,asks[4].amount,bids[4].price,bids[4].amount"
        );
        assert_eq!(DataType::BookSnapshot25.columns().len(), 104);
        assert!(
            DataType::BookSnapshot25
                .header()
                .ends_with("asks[24].price,asks[24].amount,bids[24].price,bids[24].amount")
        );
    }

    #[test]
    fn names_round_trip_and_ignore_case() {
        for t in DataType::ALL {
            assert_eq!(t.as_str().parse::<DataType>().unwrap(), t);
        }
        assert_eq!(
            "INCREMENTAL_BOOK_L2".parse::<DataType>().unwrap(),
            DataType::IncrementalBookL2
        );
        let err = "tradez".parse::<DataType>().unwrap_err().to_string();
        assert!(err.contains("tradez") && err.contains("options_chain"), "{err}");
    }

    #[test]
    fn schemas_type_columns_as_designed() {
        for t in DataType::ALL {
            let s = t.schema();
            assert_eq!(s.field(LOCAL_TIMESTAMP_INDEX).name(), LOCAL_TIMESTAMP);
            for (f, c) in s.fields().iter().zip(t.columns()) {
                let expected = match c.name.as_str() {
                    "timestamp" | "local_timestamp" | "funding_timestamp" | "expiration" => timestamp_type(),
                    "exchange" | "symbol" | "id" | "side" | "type" | "underlying_index" => ArrowType::Utf8,
                    "is_snapshot" => ArrowType::Boolean,
                    _ => ArrowType::Float64,
                };
                assert_eq!(f.data_type(), &expected, "{t} {}", c.name);
            }
        }
    }
}
