//! A single-pass CSV → Arrow decoder for Tardis's CSV files.
//!
//! arrow-csv splits each record into an intermediate buffer and then walks it again column by
//! column; in a cold pull that was a quarter of all CPU (issue 4 profile). Tardis's files are
//! simple (comma-separated, LF, one header, no quoting in practice), so this decoder finds the
//! delimiters of a whole block at once with SIMD (`memchr`) and parses each field straight into
//! a typed column builder. Quoted fields are still handled, per line, on a slower path (RFC
//! 4180: `"a,b"`, doubled `""`), so a quote never causes a silent misparse.
//!
//! Values parse exactly as a CSV reader gives them: floats correctly rounded (fast-float2 reads
//! the bytes directly and agrees with `str::parse` bit for bit, which a test checks), timestamps
//! as integer microseconds, an empty cell as null (an error in a column
//! Tardis always fills).

use std::io::BufRead;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::ArrowError;

use crate::model::{Column, ColumnKind, DataType};

/// Why a row could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column '{column}': {reason}")]
pub struct RowError {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    /// The column at fault.
    pub column: String,
    /// Why it was refused.
    pub reason: String,
}

enum Builder {
    Timestamp(Vec<i64>, NullBufferBuilder),
    Float(Vec<f64>, NullBufferBuilder),
    Utf8 {
        values: Vec<u8>,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
    },
    Bool(BooleanBufferBuilder, NullBufferBuilder),
}

impl Builder {
    fn new(kind: ColumnKind, rows: usize) -> Self {
        let nulls = NullBufferBuilder::new(rows);
        match kind {
            ColumnKind::Timestamp => Builder::Timestamp(Vec::with_capacity(rows), nulls),
            ColumnKind::Float64 => Builder::Float(Vec::with_capacity(rows), nulls),
            ColumnKind::Utf8 => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Builder::Utf8 {
                    values: Vec::with_capacity(rows * 8),
                    offsets,
                    nulls,
                }
            }
            ColumnKind::Boolean => Builder::Bool(BooleanBufferBuilder::new(rows), nulls),
        }
    }

    /// Appends one field; `Err` carries the reason.
    fn push(&mut self, field: &[u8], nullable: bool) -> Result<(), String> {
        if field.is_empty() {
            if !nullable {
                return Err("empty value in a column that is never empty".into());
            }
            match self {
                Builder::Timestamp(v, n) => {
                    v.push(0);
                    n.append_null();
                }
                Builder::Float(v, n) => {
                    v.push(0.0);
                    n.append_null();
                }
                Builder::Utf8 { values, offsets, nulls } => {
                    offsets.push(values.len() as i32);
                    nulls.append_null();
                }
                Builder::Bool(v, n) => {
                    v.append(false);
                    n.append_null();
                }
            }
            return Ok(());
        }
        match self {
            Builder::Timestamp(v, n) => {
                v.push(parse_i64(field).ok_or_else(|| bad(field, "an integer timestamp (µs)"))?);
                n.append_non_null();
            }
            Builder::Float(v, n) => {
                // Parsed from the bytes (no UTF-8 check first), correctly rounded like `str::parse`.
                let x = fast_float2::parse::<f64, _>(field).map_err(|_| bad(field, "a number"))?;
                v.push(x);
                n.append_non_null();
            }
            Builder::Utf8 { values, offsets, nulls } => {
                values.extend_from_slice(field);
                let end =
                    i32::try_from(values.len()).map_err(|_| "more than 2 GiB of text in one batch".to_string())?;
                offsets.push(end);
                nulls.append_non_null();
            }
            Builder::Bool(v, n) => {
                let b = if field.eq_ignore_ascii_case(b"true") {
                    true
                } else if field.eq_ignore_ascii_case(b"false") {
                    false
                } else {
                    return Err(bad(field, "true or false"));
                };
                v.append(b);
                n.append_non_null();
            }
        }
        Ok(())
    }

    /// Drops values past the first `rows` (a line abandoned half-way).
    fn truncate(&mut self, rows: usize) {
        match self {
            Builder::Timestamp(v, n) => {
                v.truncate(rows);
                n.truncate(rows);
            }
            Builder::Float(v, n) => {
                v.truncate(rows);
                n.truncate(rows);
            }
            Builder::Utf8 { values, offsets, nulls } => {
                offsets.truncate(rows + 1);
                values.truncate(offsets[rows] as usize);
                nulls.truncate(rows);
            }
            Builder::Bool(v, n) => {
                v.truncate(rows);
                n.truncate(rows);
            }
        }
    }

    fn finish(&mut self, kind: ColumnKind, rows: usize) -> Result<ArrayRef, ArrowError> {
        let fresh = Builder::new(kind, rows);
        Ok(match std::mem::replace(self, fresh) {
            Builder::Timestamp(v, mut n) => {
                Arc::new(TimestampMicrosecondArray::new(ScalarBuffer::from(v), n.finish()).with_timezone("UTC"))
            }
            Builder::Float(v, mut n) => Arc::new(Float64Array::new(ScalarBuffer::from(v), n.finish())),
            Builder::Utf8 {
                values,
                offsets,
                mut nulls,
            } => Arc::new(StringArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                Buffer::from_vec(values),
                nulls.finish(),
            )?),
            Builder::Bool(mut v, mut n) => Arc::new(BooleanArray::new(v.finish(), n.finish())),
        })
    }
}

fn bad(field: &[u8], expected: &str) -> String {
    let shown: String = String::from_utf8_lossy(field).chars().take(40).collect();
    format!("'{shown}' is not {expected}")
}

/// Parses an optionally signed decimal integer, refusing overflow and anything else.
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(d))?;
    }
    Some(if neg { -v } else { v })
}

/// Splits one line that contains quotes into its fields (RFC 4180).
fn split_quoted(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut fields = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    let mut at_start = true;
    while i < line.len() {
        let b = line[i];
        if quoted {
            if b == b'"' {
                if line.get(i + 1) == Some(&b'"') {
                    cur.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                cur.push(b);
            }
        } else if b == b',' {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
            i += 1;
            continue;
        } else if b == b'"' && at_start {
            quoted = true;
        } else {
            cur.push(b);
        }
        at_start = false;
        i += 1;
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(cur);
    Ok(fields)
}

/// Decodes the data rows of one file into batches of the data type's output schema.
pub(crate) struct CsvDecoder {
    data_type: DataType,
    columns: &'static [Column],
    builders: Vec<Builder>,
    rows: usize,
    batch_rows: usize,
    /// 1-based line number of the next line to decode.
    line: u64,
    /// Rows decoded, over all batches.
    total_rows: u64,
}

impl CsvDecoder {
    /// A decoder for the lines after the header (`first_line` is the header's line + 1).
    pub fn new(data_type: DataType, first_line: u64) -> Self {
        let batch_rows = data_type.batch_rows();
        let columns = data_type.columns();
        Self {
            data_type,
            columns,
            builders: columns.iter().map(|c| Builder::new(c.kind, batch_rows)).collect(),
            rows: 0,
            batch_rows,
            line: first_line,
            total_rows: 0,
        }
    }

    fn row_error(&self, col: usize, reason: String) -> RowError {
        RowError {
            line: self.line,
            column: self
                .columns
                .get(col)
                .map_or_else(|| format!("#{}", col + 1), |c| c.name.clone()),
            reason,
        }
    }

    /// Decodes a block of whole lines (each ending in `\n`, the last one may not), handing
    /// each full batch to `emit`.
    ///
    /// # Errors
    /// The first bad row, or an error from `emit` (as [`DecodeStep::Sink`]).
    pub fn decode_lines<E>(
        &mut self,
        block: &[u8],
        emit: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), DecodeStep<E>> {
        let ncols = self.columns.len();
        let mut line_start = 0;
        let mut field_start = 0;
        let mut col = 0;
        let mut pos = 0;
        while pos < block.len() {
            let Some(rel) = memchr::memchr3(b',', b'\n', b'"', &block[pos..]) else {
                // The last line has no line end.
                pos = block.len();
                break;
            };
            let at = pos + rel;
            match block[at] {
                b',' => {
                    if col + 1 >= ncols {
                        return Err(DecodeStep::Row(
                            self.row_error(col, format!("more than {ncols} fields")),
                        ));
                    }
                    self.push(col, &block[field_start..at])?;
                    col += 1;
                    field_start = at + 1;
                    pos = at + 1;
                }
                b'\n' => {
                    self.end_line(&block[field_start..at], col, emit)?;
                    col = 0;
                    line_start = at + 1;
                    field_start = line_start;
                    pos = line_start;
                }
                _ => {
                    // A quote: drop what this line pushed so far and decode it whole on the
                    // careful path.
                    for b in &mut self.builders {
                        b.truncate(self.rows);
                    }
                    let end = memchr::memchr(b'\n', &block[at..]).map_or(block.len(), |e| at + e);
                    self.quoted_line(&block[line_start..end], emit)?;
                    col = 0;
                    line_start = (end + 1).min(block.len());
                    field_start = line_start;
                    pos = line_start;
                    if end == block.len() {
                        return Ok(());
                    }
                }
            }
        }
        if line_start < block.len() {
            // A final line without `\n`.
            self.end_line(&block[field_start..pos], col, emit)?;
        }
        Ok(())
    }

    fn push<E>(&mut self, col: usize, field: &[u8]) -> Result<(), DecodeStep<E>> {
        let nullable = self.columns[col].nullable;
        self.builders[col]
            .push(field, nullable)
            .map_err(|reason| DecodeStep::Row(self.row_error(col, reason)))
    }

    fn end_line<E>(
        &mut self,
        last: &[u8],
        col: usize,
        emit: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), DecodeStep<E>> {
        let last = last.strip_suffix(b"\r").unwrap_or(last);
        if col == 0 && last.is_empty() {
            // A blank line (e.g. a trailing one): nothing to decode.
            self.line += 1;
            return Ok(());
        }
        if col + 1 != self.columns.len() {
            return Err(DecodeStep::Row(self.row_error(
                col,
                format!("{} fields where {} were expected", col + 1, self.columns.len()),
            )));
        }
        self.push(col, last)?;
        self.finish_row(emit)
    }

    fn quoted_line<E>(
        &mut self,
        line: &[u8],
        emit: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), DecodeStep<E>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let fields = split_quoted(line).map_err(|r| DecodeStep::Row(self.row_error(0, r)))?;
        if fields.len() != self.columns.len() {
            let n = fields.len();
            return Err(DecodeStep::Row(self.row_error(
                n.min(self.columns.len()) - 1,
                format!("{n} fields where {} were expected", self.columns.len()),
            )));
        }
        for (col, f) in fields.iter().enumerate() {
            self.push(col, f)?;
        }
        self.finish_row(emit)
    }

    fn finish_row<E>(&mut self, emit: &mut impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), DecodeStep<E>> {
        self.rows += 1;
        self.total_rows += 1;
        self.line += 1;
        if self.rows == self.batch_rows {
            let batch = self.flush().map_err(DecodeStep::Arrow)?;
            if let Some(b) = batch {
                emit(b).map_err(DecodeStep::Sink)?;
            }
        }
        Ok(())
    }

    /// Builds a batch of the rows decoded so far (`None` if there are none).
    ///
    /// # Errors
    /// Invalid UTF-8 in a text column.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let rows = self.rows;
        self.rows = 0;
        let columns = self
            .builders
            .iter_mut()
            .zip(self.columns)
            .map(|(b, c)| b.finish(c.kind, self.batch_rows))
            .collect::<Result<Vec<_>, _>>()?;
        debug_assert!(columns.iter().all(|c| c.len() == rows));
        RecordBatch::try_new(self.data_type.schema(), columns).map(Some)
    }

    /// Rows decoded so far.
    pub fn rows_decoded(&self) -> u64 {
        self.total_rows
    }
}

/// What stopped a decode step.
#[derive(Debug)]
pub(crate) enum DecodeStep<E> {
    Row(RowError),
    Arrow(ArrowError),
    Sink(E),
}

/// Reads whole lines from `input` in large blocks and decodes them.
///
/// # Errors
/// An I/O error, a bad row, or an error from `emit`.
pub(crate) fn decode_stream<R: BufRead, E>(
    decoder: &mut CsvDecoder,
    input: &mut R,
    mut emit: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<u64, StreamError<E>> {
    let mut carry: Vec<u8> = Vec::new();
    let mut bytes = 0u64;
    loop {
        let buf = input.fill_buf().map_err(StreamError::Io)?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        bytes += n as u64;
        // Decode up to the last line end; keep the partial line for the next block.
        match memchr::memrchr(b'\n', buf) {
            None => carry.extend_from_slice(buf),
            Some(last) => {
                if carry.is_empty() {
                    decoder
                        .decode_lines(&buf[..=last], &mut emit)
                        .map_err(StreamError::from)?;
                } else {
                    carry.extend_from_slice(&buf[..=last]);
                    decoder.decode_lines(&carry, &mut emit).map_err(StreamError::from)?;
                    carry.clear();
                }
                carry.extend_from_slice(&buf[last + 1..]);
            }
        }
        input.consume(n);
    }
    if !carry.is_empty() {
        decoder.decode_lines(&carry, &mut emit).map_err(StreamError::from)?;
    }
    if let Some(b) = decoder.flush().map_err(StreamError::Arrow)? {
        emit(b).map_err(StreamError::Sink)?;
    }
    Ok(bytes)
}

/// What stopped [`decode_stream`].
#[derive(Debug)]
pub(crate) enum StreamError<E> {
    Io(std::io::Error),
    Row(RowError),
    Arrow(ArrowError),
    Sink(E),
}

impl<E> From<DecodeStep<E>> for StreamError<E> {
    fn from(s: DecodeStep<E>) -> Self {
        match s {
            DecodeStep::Row(r) => StreamError::Row(r),
            DecodeStep::Arrow(a) => StreamError::Arrow(a),
            DecodeStep::Sink(e) => StreamError::Sink(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

    fn decode(
        t: DataType,
        body: &str,
        block: usize,
    ) -> Result<Vec<RecordBatch>, StreamError<std::convert::Infallible>> {
        let mut d = CsvDecoder::new(t, 2);
        let mut out = Vec::new();
        let mut r = std::io::BufReader::with_capacity(block, body.as_bytes());
        decode_stream(&mut d, &mut r, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    const ROWS: &str = "deribit,BTC-PERPETUAL,1,2,9ad,sell,8601,30\nderibit,BTC-PERPETUAL,3,4,,buy,8600.5,0.001\nderibit,BTC-PERPETUAL,5,6,x,buy,1e-5,7\n";

    #[test]
    fn every_block_size_gives_the_same_rows() {
        let whole = decode(DataType::Trades, ROWS, 1 << 16).unwrap();
        for block in [1, 2, 3, 7, 16, 50] {
            let got = decode(DataType::Trades, ROWS, block).unwrap();
            assert_eq!(got, whole, "block {block}");
        }
        let b = &whole[0];
        assert_eq!(b.num_rows(), 3);
        assert!(b.column(4).is_null(1));
        let price = b.column(6).as_primitive::<Float64Type>();
        assert_eq!(price.values().to_vec(), vec![8601.0, 8600.5, 0.00001]);
    }

    #[test]
    fn quoted_fields_crlf_and_a_missing_last_line_end() {
        let body = "\"deribit\",BTC-PERPETUAL,1,2,\"a,\"\"b\"\"\",sell,1,2\r\nderibit,BTC-PERPETUAL,3,4,z,buy,5,6\nderibit,BTC-PERPETUAL,7,8,\"q,1\",buy,9,10";
        let b = &decode(DataType::Trades, body, 8).unwrap()[0];
        assert_eq!(b.num_rows(), 3);
        assert_eq!(
            b.column(4).as_string::<i32>().value(2),
            "q,1",
            "fields before a mid-line quote are not doubled"
        );
        assert_eq!(
            b.column(2)
                .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                .value(2),
            7
        );
        assert_eq!(b.column(0).as_string::<i32>().value(0), "deribit");
        assert_eq!(b.column(4).as_string::<i32>().value(0), "a,\"b\"");
        assert_eq!(b.column(7).as_primitive::<Float64Type>().value(0), 2.0, "CR stripped");
        assert_eq!(b.column(7).as_primitive::<Float64Type>().value(1), 6.0);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = decode(DataType::Trades, "x,Y,1,2,a,buy,1,2\nx,Y,1,2,a,buy,abc,2\n", 1024).unwrap_err();
        let StreamError::Row(r) = e else { panic!("{e:?}") };
        assert_eq!((r.line, r.column.as_str()), (3, "price"));
        assert!(r.reason.contains("'abc' is not a number"), "{r}");
        let StreamError::Row(r) = decode(DataType::Trades, "x,Y,1,2,a,buy,1\n", 1024).unwrap_err() else {
            panic!()
        };
        assert!(r.reason.contains("7 fields where 8"), "{r}");
        let StreamError::Row(r) = decode(DataType::Trades, "x,Y,1,2,a,buy,1,2,3\n", 1024).unwrap_err() else {
            panic!()
        };
        assert!(r.reason.contains("more than 8 fields"), "{r}");
        let StreamError::Row(r) = decode(DataType::Trades, "x,Y,1,,a,buy,1,2\n", 1024).unwrap_err() else {
            panic!()
        };
        assert_eq!(r.column, "local_timestamp");
        assert!(r.reason.contains("empty"), "{r}");
        let StreamError::Row(r) = decode(DataType::Trades, "x,Y,99999999999999999999,2,a,buy,1,2\n", 1024).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(r.column, "timestamp");
        let StreamError::Row(r) = decode(DataType::IncrementalBookL2, "x,Y,1,2,yes,bid,1,2\n", 1024).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(r.column, "is_snapshot");
    }

    #[test]
    fn invalid_utf8_is_an_error_not_garbage() {
        let mut d = CsvDecoder::new(DataType::Trades, 2);
        let mut body = b"x,Y,1,2,".to_vec();
        body.extend([0xff, 0xfe]);
        body.extend(b",buy,1,2\n");
        let mut r = std::io::BufReader::new(&body[..]);
        let e = decode_stream(&mut d, &mut r, |_| Ok::<_, std::convert::Infallible>(())).unwrap_err();
        assert!(matches!(e, StreamError::Arrow(_)), "{e:?}");
    }

    #[test]
    fn floats_parse_to_the_same_bits_as_the_standard_library() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "1",
            "8601",
            "8600.5",
            "0.001",
            "1e-5",
            "1E5",
            "+3.25",
            "2.2250738585072014e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "1e400",
            "0.1",
            "0.30000000000000004",
            "123456789012345678901234567890",
            "inf",
            "-infinity",
            "NaN",
        ]
        .map(String::from)
        .to_vec();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mantissa = state % 10_000_000_000;
            let scale = (state >> 40) % 12;
            cases.push(format!(
                "{}.{:0width$}",
                mantissa / 10u64.pow(scale as u32),
                mantissa % 10u64.pow(scale as u32),
                width = scale as usize
            ));
            cases.push(format!("{mantissa}e-{}", state >> 59));
        }
        for c in &cases {
            let ours = fast_float2::parse::<f64, _>(c.as_bytes()).unwrap();
            let std: f64 = c.parse().unwrap();
            assert!(
                ours.to_bits() == std.to_bits() || (ours.is_nan() && std.is_nan()),
                "{c}: {ours} vs {std}"
            );
        }
        for bad in ["", "1.2.3", "1,5", "abc", "1e", "--1", " 1"] {
            assert!(fast_float2::parse::<f64, _>(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b"1583020803307160"), Some(1_583_020_803_307_160));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [&b""[..], b"-", b"1.5", b"12a", b"9223372036854775808", b" 1"] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
