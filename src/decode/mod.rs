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
    let mut compressed = BufReader::with_capacity(COMPRESSED_BUF, input);
    let is_empty = compressed.fill_buf().map_err(|e| input_or_gzip(file, e))?.is_empty();
    if is_empty {
        return Ok(0);
    }
    let csv = BufReader::with_capacity(CSV_BUF, MultiGzDecoder::new(compressed));
    decode_csv(data_type, file, csv, sink)
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
    let mut csv = csv;
    let io_err = |e: io::Error| input_or_gzip(file, e);

    // The header: checked by us, so the error can say exactly which columns differ.
    let mut header = Vec::new();
    csv.read_until(b'\n', &mut header).map_err(io_err)?;
    if header.is_empty() {
        return Ok(0);
    }
    header::check(data_type, file, &header)?;

    let mut decoder = csv::CsvDecoder::new(data_type, 2);
    csv::decode_stream(&mut decoder, &mut csv, sink).map_err(|e| match e {
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
