//! Tardis `.csv.gz` → typed Arrow record batches, streaming: gzip members are inflated, the
//! header is checked against the data type's ([`header`]), and rows are parsed in one pass into
//! typed columns ([`csv`]). Every failure is a [`DecodeError`] naming the file.
//!
//! Runs on a blocking thread, never on the async runtime. Gzip may have several members
//! (Tardis uploads big files in chunks), so [`flate2::bufread::MultiGzDecoder`] is used: a plain
//! `GzDecoder` silently stops at the end of the first member. An empty body or an empty gzip is
//! a valid day with no rows (<https://docs.tardis.dev/downloadable-csv-files>).

use std::io::{self, BufRead, BufReader, Read};

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use flate2::bufread::MultiGzDecoder;

use crate::model::DataType;

mod csv;
mod header;

pub use csv::RowError;

/// Size of the buffer between the socket/spool and the inflater.
const COMPRESSED_BUF: usize = 256 * 1024;
/// Size of the buffer of inflated CSV handed to the CSV decoder.
const CSV_BUF: usize = 1024 * 1024;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The header differs from the one Tardis documents for this data type: never guess.
    #[error("{file}: unexpected CSV header for {data_type}: {detail}")]
    Header {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        /// The data type expected.
        data_type: DataType,
        /// Which columns differ.
        detail: String,
    },
    /// A row that does not parse into the schema.
    #[error("{file}")]
    Row {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        #[source]
        /// The cause.
        source: csv::RowError,
    },
    /// A batch that Arrow refuses (e.g. invalid UTF-8 in a text column).
    #[error("{file}")]
    Csv {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        #[source]
        /// The cause.
        source: ArrowError,
    },
    /// The body is not gzip at all (an HTML page from a proxy, a captive portal, a CDN): the
    /// same on every attempt, so never retried.
    #[error(
        "{file}: not a gzip file (it starts with {start:?}): a proxy or captive portal answered instead of Tardis?"
    )]
    NotGzip {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        /// Its first bytes, printable.
        start: String,
    },
    /// A line longer than [`DecodeLimits::max_line`].
    #[error("{file}: line {line} is longer than {limit} bytes (--max-line-size)")]
    LineTooLong {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        /// 1-based line number.
        line: u64,
        /// The limit.
        limit: usize,
    },
    /// More inflated bytes than [`DecodeLimits::max_inflated`] (a gzip bomb).
    #[error("{file}: inflates to more than {limit} bytes (--max-inflated-size): a gzip bomb?")]
    TooBig {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        /// The limit.
        limit: u64,
    },
    /// The gzip stream is corrupt or truncated (bad CRC, missing trailer, bad deflate data).
    #[error("{file}: corrupt or truncated gzip")]
    Gzip {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        #[source]
        /// The cause.
        source: io::Error,
    },
    /// Reading the compressed input failed (e.g. the download was interrupted).
    #[error("{file}")]
    Input {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        #[source]
        /// The cause.
        source: io::Error,
    },
    /// The consumer of the batches failed (e.g. writing the chunk file).
    #[error("{file}")]
    Sink {
        /// The file (a dataset path or file name; never a URL with credentials).
        file: String,
        #[source]
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Limits on what one body may decode to, so that no input costs unbounded memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Longest line accepted, in bytes (`--max-line-size`). A line is held whole while it is
    /// parsed, so this bounds the decoder's memory whatever arrives.
    pub max_line: usize,
    /// Most inflated bytes accepted (`--max-inflated-size`): a gzip bomb stops here.
    pub max_inflated: u64,
}

impl Default for DecodeLimits {
    /// 1 MiB per line (the widest Tardis rows, book_snapshot_25, are about 2 KB) and 256 GiB
    /// per day (the largest days, options_chain at 4.5 to 9.5 GB of gzip, inflate to tens of GB).
    fn default() -> Self {
        Self {
            max_line: 1 << 20,
            max_inflated: 256 << 30,
        }
    }
}

/// Marks an `io::Error` as coming from the compressed input rather than from the gzip decoder,
/// so the two can be told apart after flate2 has passed the error through.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Decodes a gzip-compressed Tardis CSV from `input`, handing each batch to `sink`.
///
/// `file` names the source in errors (a dataset path or file name, never a URL with secrets).
///
/// # Errors
/// See [`DecodeError`]: a header mismatch, an unparsable row, corrupt gzip, an input error or a
/// sink error. Nothing is retried here.
pub fn decode_gzip_csv<R, E>(
    data_type: DataType,
    file: &str,
    input: R,
    sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<u64, DecodeError>
where
    R: Read,
    E: std::error::Error + Send + Sync + 'static,
{
    decode_gzip_csv_limited(data_type, file, input, DecodeLimits::default(), sink)
}

/// As [`decode_gzip_csv`], within `limits`.
///
/// # Errors
/// As [`decode_gzip_csv`], and [`DecodeError::NotGzip`], [`DecodeError::LineTooLong`],
/// [`DecodeError::TooBig`].
pub fn decode_gzip_csv_limited<R, E>(
    data_type: DataType,
    file: &str,
    mut input: R,
    limits: DecodeLimits,
    sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<u64, DecodeError>
where
    R: Read,
    E: std::error::Error + Send + Sync + 'static,
{
    // The first two bytes decide: nothing (a day without data), gzip's magic, or not gzip.
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match input.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(input_or_gzip(file, e)),
        }
    }
    if got == 0 {
        return Ok(0);
    }
    if got == 2 && magic != [0x1f, 0x8b] {
        let mut start = magic.to_vec();
        let _ = input.by_ref().take(38).read_to_end(&mut start);
        return Err(DecodeError::NotGzip {
            file: file.to_string(),
            start: printable(&start),
        });
    }
    let compressed = BufReader::with_capacity(COMPRESSED_BUF, io::Cursor::new(magic[..got].to_vec()).chain(input));
    let csv = BufReader::with_capacity(CSV_BUF, MultiGzDecoder::new(compressed));
    decode_csv_limited(data_type, file, csv, limits, sink)
}

/// The first bytes of a body, for a message: printable ASCII kept, the rest as `.`.
fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

fn input_or_gzip(file: &str, e: io::Error) -> DecodeError {
    let from_input = e.get_ref().is_some_and(|inner| inner.is::<InputError>());
    if from_input {
        DecodeError::Input {
            file: file.to_string(),
            source: e,
        }
    } else {
        DecodeError::Gzip {
            file: file.to_string(),
            source: e,
        }
    }
}

/// Decodes an uncompressed Tardis CSV stream (header line first).
///
/// # Errors
/// As [`decode_gzip_csv`].
pub fn decode_csv<R, E>(
    data_type: DataType,
    file: &str,
    csv: R,
    sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<u64, DecodeError>
where
    R: BufRead,
    E: std::error::Error + Send + Sync + 'static,
{
    decode_csv_limited(data_type, file, csv, DecodeLimits::default(), sink)
}

/// As [`decode_csv`], within `limits`.
///
/// # Errors
/// As [`decode_gzip_csv_limited`].
pub fn decode_csv_limited<R, E>(
    data_type: DataType,
    file: &str,
    csv: R,
    limits: DecodeLimits,
    sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<u64, DecodeError>
where
    R: BufRead,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut csv = csv;
    let io_err = |e: io::Error| input_or_gzip(file, e);

    // The header: checked by us, so the error can say exactly which columns differ. Read
    // within the line limit: a header that never ends must not fill the memory.
    let mut header = Vec::new();
    (&mut csv)
        .take(limits.max_line as u64 + 1)
        .read_until(b'\n', &mut header)
        .map_err(io_err)?;
    if header.len() > limits.max_line {
        return Err(DecodeError::LineTooLong {
            file: file.to_string(),
            line: 1,
            limit: limits.max_line,
        });
    }
    if header.is_empty() {
        return Ok(0);
    }
    header::check(data_type, file, &header)?;

    let mut decoder = csv::CsvDecoder::new(data_type, 2).with_limits(limits, header.len() as u64);
    csv::decode_stream(&mut decoder, &mut csv, sink).map_err(|e| match e {
        csv::StreamError::LineTooLong(line) => DecodeError::LineTooLong {
            file: file.to_string(),
            line,
            limit: limits.max_line,
        },
        csv::StreamError::TooBig => DecodeError::TooBig {
            file: file.to_string(),
            limit: limits.max_inflated,
        },
        csv::StreamError::Io(e) => io_err(e),
        csv::StreamError::Row(source) => DecodeError::Row {
            file: file.to_string(),
            source,
        },
        csv::StreamError::Arrow(source) => DecodeError::Csv {
            file: file.to_string(),
            source,
        },
        csv::StreamError::Sink(e) => DecodeError::Sink {
            file: file.to_string(),
            source: Box::new(e),
        },
    })?;
    Ok(decoder.rows_decoded())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, BooleanArray, Float64Array, StringArray, TimestampMicrosecondArray};
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(t: DataType, body: &[u8]) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut out = Vec::new();
        decode_gzip_csv(t, "test.csv.gz", body, |b| {
            out.push(b);
            Ok::<_, io::Error>(())
        })?;
        Ok(out)
    }

    const TRADES: &str = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
        bitmex,XBTUSD,1583020803145000,1583020803307160,9ad9e4b1,sell,8601,30\n\
        bitmex,XBTUSD,1583020803145000,1583020803307161,,buy,8600.5,0.001\n";

    #[test]
    fn trades_decode_to_typed_columns() {
        let batches = decode(DataType::Trades, &gz(TRADES.as_bytes())).unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema(), DataType::Trades.schema());
        let ts = b
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(1), 1_583_020_803_307_161);
        let id = b.column(4).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(id.is_null(1), "an empty id is null, not \"\"");
        let price = b.column(6).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(price.values().to_vec(), vec![8601.0, 8600.5]);
    }

    #[test]
    fn multi_member_gzip_is_read_to_the_end() {
        let (head, tail) = TRADES.split_at(TRADES.len() - 30);
        let mut body = gz(head.as_bytes());
        body.extend(gz(tail.as_bytes()));
        let rows: usize = decode(DataType::Trades, &body)
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn empty_bodies_are_days_without_rows() {
        assert!(decode(DataType::Trades, b"").unwrap().is_empty());
        assert!(decode(DataType::Trades, &gz(b"")).unwrap().is_empty());
        let header_only = format!("{}\n", DataType::Trades.header());
        assert!(
            decode(DataType::Trades, &gz(header_only.as_bytes()))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_different_header_names_the_file_and_columns() {
        let body = gz(b"exchange,symbol,timestamp,local_timestamp,side,id,price,size\nx,y,1,1,a,b,1,1\n");
        let err = decode(DataType::Trades, &body).unwrap_err().to_string();
        assert!(
            err.starts_with("test.csv.gz: unexpected CSV header for trades"),
            "{err}"
        );
        assert!(
            err.contains("missing 'amount'") && err.contains("unexpected 'size'"),
            "{err}"
        );
        let swapped = gz(b"exchange,symbol,timestamp,local_timestamp,side,id,price,amount\n");
        let err = decode(DataType::Trades, &swapped).unwrap_err().to_string();
        assert!(err.contains("column 5 is 'side' where 'id' was expected"), "{err}");
    }

    #[test]
    fn truncated_or_corrupt_gzip_is_a_gzip_error() {
        let body = gz(TRADES.as_bytes());
        let err = decode(DataType::Trades, &body[..body.len() - 4]).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip { .. }), "{err:?}");
        let err = decode(DataType::Trades, &body[..body.len() / 2]).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip { .. }), "{err:?}");
        let mut bad_crc = body.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        let err = decode(DataType::Trades, &bad_crc).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip { .. }), "{err:?}");
    }

    #[test]
    fn bad_values_name_the_file() {
        let body = gz(b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nx,y,1,1,a,buy,abc,1\n");
        let err = crate::error::chain(&decode(DataType::Trades, &body).unwrap_err());
        assert!(err.starts_with("test.csv.gz:") && err.contains("abc"), "{err}");
        // An empty cell in a column Tardis always fills is an error, not a silent null.
        let body = gz(b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nx,y,1,1,a,buy,,1\n");
        assert!(decode(DataType::Trades, &body).is_err());
    }

    #[test]
    fn booleans_and_nullable_floats() {
        let l2 = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n\
                  deribit,BTC-PERPETUAL,1,2,true,ask,6422,1000\nderibit,BTC-PERPETUAL,1,2,false,bid,6421.5,0\n";
        let b = &decode(DataType::IncrementalBookL2, &gz(l2.as_bytes())).unwrap()[0];
        let snap = b.column(4).as_any().downcast_ref::<BooleanArray>().unwrap();
        assert!(snap.value(0) && !snap.value(1));
        let q =
            "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\nx,Y,1,2,,,100.5,3\n";
        let b = &decode(DataType::Quotes, &gz(q.as_bytes())).unwrap()[0];
        assert!(b.column(4).is_null(0) && b.column(5).is_null(0) && !b.column(6).is_null(0));
    }
}

/// Property tests: arbitrary bytes and truncations never panic, never take memory beyond the
/// limits, and either fail or give exactly the rows of the CSV.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n";

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Decodes within small limits; returns the rows as text (or the error).
    fn rows(body: &[u8], limits: DecodeLimits) -> Result<Vec<String>, DecodeError> {
        let mut out = Vec::new();
        decode_gzip_csv_limited(DataType::Trades, "p.csv.gz", body, limits, |b: RecordBatch| {
            for r in 0..b.num_rows() {
                let cells: Vec<String> = b.columns().iter().map(|c| arrow_cast_display(c.as_ref(), r)).collect();
                out.push(cells.join(","));
            }
            Ok::<_, io::Error>(())
        })?;
        Ok(out)
    }

    fn arrow_cast_display(c: &dyn arrow_array::Array, r: usize) -> String {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float64Type, TimestampMicrosecondType};
        if c.is_null(r) {
            return String::new();
        }
        match c.data_type() {
            arrow_schema::DataType::Utf8 => c.as_string::<i32>().value(r).to_string(),
            arrow_schema::DataType::Float64 => c.as_primitive::<Float64Type>().value(r).to_string(),
            _ => c.as_primitive::<TimestampMicrosecondType>().value(r).to_string(),
        }
    }

    /// A valid trades row from arbitrary numbers.
    fn row() -> impl Strategy<Value = String> {
        (
            0i64..1 << 50,
            0i64..1 << 50,
            "[a-z0-9]{0,12}",
            prop::bool::ANY,
            0u32..1_000_000,
            1u32..1000,
        )
            .prop_map(|(t, l, id, buy, p, a)| {
                format!("x,Y,{t},{l},{id},{},{p}.5,{a}", if buy { "buy" } else { "sell" })
            })
    }

    const LIMITS: DecodeLimits = DecodeLimits {
        max_line: 4096,
        max_inflated: 1 << 20,
    };

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..4096)) {
            let _ = rows(&body, LIMITS);
            let mut gzipped = gz(HEADER.as_bytes());
            gzipped.extend(gz(&body));
            let _ = rows(&gzipped, LIMITS);
        }

        #[test]
        fn valid_files_decode_exactly_and_truncations_fail_or_give_a_prefix(
            lines in prop::collection::vec(row(), 0..200),
            cut in any::<prop::sample::Index>(),
        ) {
            let csv = format!("{HEADER}{}", lines.iter().map(|l| format!("{l}\n")).collect::<String>());
            let body = gz(csv.as_bytes());
            let got = rows(&body, LIMITS).unwrap();
            let want: Vec<String> = lines
                .iter()
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    let price: f64 = f[6].parse().unwrap();
                    let amount: f64 = f[7].parse().unwrap();
                    format!("{},{},{},{},{},{},{price},{amount}", f[0], f[1], f[2], f[3], f[4], f[5])
                })
                .collect();
            prop_assert_eq!(&got, &want);
            // Any cut of the gzip body: an error, never silently fewer rows.
            let at = cut.index(body.len());
            if at > 0 && at < body.len() {
                prop_assert!(rows(&body[..at], LIMITS).is_err());
            }
        }

        #[test]
        fn lines_past_the_limit_always_fail_with_their_number(extra in 0usize..10_000, before in 0usize..5) {
            let mut csv = HEADER.to_string();
            for i in 0..before {
                csv.push_str(&format!("x,Y,{i},{i},a,buy,1,1\n"));
            }
            csv.push_str(&format!("x,Y,1,1,{},buy,1,1\n", "z".repeat(LIMITS.max_line + extra)));
            match rows(&gz(csv.as_bytes()), LIMITS) {
                Err(DecodeError::LineTooLong { line, .. }) => prop_assert_eq!(line, before as u64 + 2),
                other => prop_assert!(false, "{:?}", other.map(|r| r.len())),
            }
        }
    }
}
