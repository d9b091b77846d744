//! The chunk file: one day of one symbol and data type as a self-verifying Parquet file.
//!
//! Every tier stores the same bytes. The footer's key/value metadata carries an xxh3-64
//! checksum of every byte before the footer (magic, row groups, column chunks, page indexes),
//! plus the chunk key, row count and `local_timestamp` bounds. A reader checks the checksum
//! before trusting a file, so a torn write, a bit flip or a garbage response from a remote
//! cache is a miss, never bad rows in the output. Any Parquet reader can still read the file.

use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::ArrowError;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use twox_hash::XxHash3_64;

use crate::model::{ChunkKey, DataType, LOCAL_TIMESTAMP_INDEX};
use crate::parquet_writer::ParallelWriter;

/// Key/value metadata names written into every chunk file footer.
pub mod meta_keys {
    /// Chunk file format; a file with another value is not ours.
    pub const FORMAT: &str = "tickvault.format";
    /// xxh3-64 (16 hex digits) of the whole file as it would be with [`super::CHECKSUM_PLACEHOLDER`]
    /// in place of these 16 digits: every byte is covered, the footer included.
    pub const CHECKSUM: &str = "tickvault.xxh3";
    /// The chunk key, `exchange/data_type/SYMBOL/YYYY-MM-DD`.
    pub const CHUNK: &str = "tickvault.chunk";
    pub const ROWS: &str = "tickvault.rows";
    pub const MIN_TS: &str = "tickvault.min_local_timestamp";
    pub const MAX_TS: &str = "tickvault.max_local_timestamp";
    /// `false` when Tardis had not finished exporting the day: such an entry is never served as a hit.
    pub const COMPLETE: &str = "tickvault.complete";
    pub const VERSION: &str = "tickvault.version";
    /// Where the rows came from: the dataset path (never a host with credentials, never a key).
    pub const SOURCE: &str = "tickvault.source";
}

/// The value of [`meta_keys::FORMAT`] this version writes and accepts.
pub const CHUNK_FORMAT: &str = "chunk-v1";
/// Written as the checksum value while the file is hashed, then overwritten by the checksum
/// (same length, so no offset in the file moves).
pub const CHECKSUM_PLACEHOLDER: &[u8; 16] = b"xxh3:unsealed---";
const FOOTER_TAIL: usize = 8;

/// What a chunk file says about itself, read from its footer and checked against its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// The chunk key as written (`exchange/data_type/SYMBOL/YYYY-MM-DD`).
    pub chunk: String,
    pub rows: u64,
    /// Smallest and largest `local_timestamp` (µs); `None` for a day without rows.
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    pub complete: bool,
    pub checksum: u64,
    /// Size of the whole file in bytes.
    pub file_bytes: u64,
}

/// Why a chunk file could not be written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum ChunkFileError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The bytes are not a valid chunk file for the expected key (truncated, flipped, foreign).
    #[error("corrupt chunk file: {0}")]
    Corrupt(String),
}

impl ChunkFileError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Column encodings for Tardis data, measured on 6M rows of trades (benches, issue 4): the
/// arrival-ordered timestamps delta-pack (no dictionary: nearly every value is new), and trade
/// ids, mostly consecutive numbers, prefix-compress (DELTA_BYTE_ARRAY). Together 15% smaller
/// and 15% faster to encode than dictionaries everywhere; prices, amounts and the few distinct
/// strings keep their dictionaries.
///
/// String columns carry no min/max statistics: `exchange` is constant, and `symbol`, `side`,
/// `type`, `underlying_index` and `id` interleave within every page of a time-ordered file, so
/// their bounds prune nothing, while computing them (a byte comparison per value) was 12% of the
/// CPU of writing a merged trades file. Timestamps and numbers keep theirs.
pub fn with_column_encodings(
    mut builder: parquet::file::properties::WriterPropertiesBuilder,
    data_type: DataType,
) -> parquet::file::properties::WriterPropertiesBuilder {
    use crate::model::ColumnKind;
    use parquet::basic::Encoding;
    use parquet::schema::types::ColumnPath;
    // Every column writer buffers up to a dictionary page and a data page; with 104 columns
    // (book_snapshot_25) the default 1 MiB each is hundreds of MB per open file.
    let page_bytes = data_type.page_bytes();
    builder = builder
        .set_data_page_size_limit(page_bytes)
        .set_dictionary_page_size_limit(page_bytes);
    for col in data_type.columns() {
        let path = ColumnPath::from(col.name.as_str());
        if col.kind == ColumnKind::Timestamp {
            builder = builder
                .set_column_dictionary_enabled(path, false)
                .set_column_encoding(ColumnPath::from(col.name.as_str()), Encoding::DELTA_BINARY_PACKED);
        } else if col.name == "id" {
            builder = builder
                .set_column_dictionary_enabled(path, false)
                .set_column_encoding(ColumnPath::from(col.name.as_str()), Encoding::DELTA_BYTE_ARRAY);
        }
        if col.kind == ColumnKind::Utf8 {
            builder =
                builder.set_column_statistics_enabled(ColumnPath::from(col.name.as_str()), EnabledStatistics::None);
        }
    }
    builder
}

/// Writer properties for cache chunk files: zstd(1) (fast; the cache is rewritten into outputs
/// anyway), column-chunk statistics, row groups sized per data type. (The merge reads whole
/// files, so no page index.)
pub fn chunk_writer_properties(data_type: DataType) -> WriterProperties {
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_offset_index_disabled(true)
        .set_max_row_group_row_count(Some(data_type.row_group_rows()));
    with_column_encodings(builder, data_type).build()
}

/// A `Write` that hashes and counts everything passing through it.
struct HashingWriter<W> {
    inner: W,
    hasher: XxHash3_64,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.write(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Tracks row count, `local_timestamp` bounds and order over a stream of batches.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub rows: u64,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    last_ts: Option<i64>,
    /// Whether every row so far had a `local_timestamp` no smaller than the previous row's.
    pub sorted: bool,
}

impl BatchStats {
    pub fn new() -> Self {
        Self {
            sorted: true,
            ..Self::default()
        }
    }

    pub fn observe(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        let Some(ts) = local_ts(batch) else { return };
        for &v in ts.values().iter() {
            if let Some(last) = self.last_ts
                && v < last
            {
                self.sorted = false;
            }
            self.last_ts = Some(v);
            self.min_ts = Some(self.min_ts.map_or(v, |m| m.min(v)));
            self.max_ts = Some(self.max_ts.map_or(v, |m| m.max(v)));
        }
    }
}

/// The `local_timestamp` column of a batch of any data type.
pub fn local_ts(batch: &RecordBatch) -> Option<&TimestampMicrosecondArray> {
    batch
        .columns()
        .get(LOCAL_TIMESTAMP_INDEX)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
}

/// A Parquet writer whose footer carries an xxh3-64 checksum of every byte before it.
///
/// Used for chunk files and for merged outputs, so both can be verified before they are trusted.
pub struct SealedWriter<W: Write + Read + Seek + Send> {
    writer: ParallelWriter<HashingWriter<W>>,
    stats: BatchStats,
}

/// The checksum and size of a sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub checksum: u64,
    pub file_bytes: u64,
}

impl<W: Write + Read + Seek + Send> SealedWriter<W> {
    /// `threads` > 1 encodes columns on that many threads (see [`ParallelWriter`]).
    ///
    /// # Errors
    /// Fails when the Parquet writer cannot be created.
    pub fn new(
        inner: W,
        schema: arrow_schema::SchemaRef,
        props: WriterProperties,
        threads: usize,
    ) -> Result<Self, ChunkFileError> {
        let hashing = HashingWriter {
            inner,
            hasher: XxHash3_64::with_seed(0),
            bytes: 0,
        };
        Ok(Self {
            writer: ParallelWriter::try_new(hashing, schema, props, threads)?,
            stats: BatchStats::new(),
        })
    }

    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ChunkFileError> {
        self.stats.observe(batch);
        self.writer.write(batch)?;
        Ok(())
    }

    /// Statistics of the rows written so far (count, order, bounds).
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Writes the footer with `kv` and the checksum placeholder, hashes the whole file as
    /// written, and patches the checksum over the placeholder. Returns the seal and the inner
    /// writer, positioned at the end.
    ///
    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn finish(mut self, kv: Vec<(&str, String)>) -> Result<(Sealed, W), ChunkFileError> {
        for (k, v) in kv {
            self.writer.append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        let placeholder = String::from_utf8_lossy(CHECKSUM_PLACEHOLDER).into_owned();
        self.writer
            .append_key_value_metadata(KeyValue::new(meta_keys::CHECKSUM.to_string(), placeholder));
        let hashing = self.writer.into_inner()?;
        let checksum = hashing.hasher.finish();
        let file_bytes = hashing.bytes;
        let mut inner = hashing.inner;
        let io = |e| ChunkFileError::io("sealing Parquet file", e);
        let pos = {
            let (footer, _) = parse_footer(file_bytes, &mut |off, n| read_at(&mut inner, off, n))?;
            footer.checksum_pos
        };
        inner.seek(SeekFrom::Start(pos)).map_err(io)?;
        inner.write_all(format!("{checksum:016x}").as_bytes()).map_err(io)?;
        inner.seek(SeekFrom::End(0)).map_err(io)?;
        inner.flush().map_err(io)?;
        Ok((Sealed { checksum, file_bytes }, inner))
    }
}

/// Creates (or truncates) a file for a [`SealedWriter`], which reads its footer back to seal it.
///
/// # Errors
/// Fails when the file cannot be created.
pub fn create_sealed_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn read_at<R: Read + Seek>(r: &mut R, off: u64, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    r.seek(SeekFrom::Start(off))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Streams record batches into a chunk file and seals it.
pub struct ChunkFileWriter<W: Write + Read + Seek + Send>(SealedWriter<W>);

impl<W: Write + Read + Seek + Send> ChunkFileWriter<W> {
    /// # Errors
    /// Fails when the Parquet writer cannot be created.
    pub fn new(inner: W, data_type: DataType) -> Result<Self, ChunkFileError> {
        Ok(Self(SealedWriter::new(
            inner,
            data_type.schema(),
            chunk_writer_properties(data_type),
            1,
        )?))
    }

    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ChunkFileError> {
        self.0.write(batch)
    }

    /// Statistics of the rows written so far (order, bounds).
    pub fn stats(&self) -> &BatchStats {
        self.0.stats()
    }

    /// Seals the file with the chunk's metadata. Returns the metadata and the inner writer.
    ///
    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn finish(self, key: &ChunkKey, complete: bool) -> Result<(ChunkMeta, W), ChunkFileError> {
        let s = self.0.stats().clone();
        let mut kv = vec![
            (meta_keys::FORMAT, CHUNK_FORMAT.to_string()),
            (meta_keys::CHUNK, key.to_string()),
            (meta_keys::ROWS, s.rows.to_string()),
            (meta_keys::COMPLETE, complete.to_string()),
            (meta_keys::VERSION, crate::VERSION.to_string()),
            (meta_keys::SOURCE, format!("tardis-datasets:{}", key.url_path())),
        ];
        if let (Some(min), Some(max)) = (s.min_ts, s.max_ts) {
            kv.push((meta_keys::MIN_TS, min.to_string()));
            kv.push((meta_keys::MAX_TS, max.to_string()));
        }
        let (sealed, inner) = self.0.finish(kv)?;
        let meta = ChunkMeta {
            chunk: key.to_string(),
            rows: s.rows,
            min_ts: s.min_ts,
            max_ts: s.max_ts,
            complete,
            checksum: sealed.checksum,
            file_bytes: sealed.file_bytes,
        };
        Ok((meta, inner))
    }
}

fn corrupt(msg: impl Into<String>) -> ChunkFileError {
    ChunkFileError::Corrupt(msg.into())
}

/// A sealed file's footer: its key/value metadata, row count and checksum.
#[derive(Debug, Clone)]
pub struct Footer {
    pub kv: std::collections::BTreeMap<String, String>,
    pub num_rows: u64,
    pub file_bytes: u64,
    /// The checksum as written (`None` while the file is being sealed).
    pub checksum: Option<u64>,
    /// Absolute offset of the checksum's 16 digits in the file.
    pub checksum_pos: u64,
}

impl Footer {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv.get(key).map(String::as_str)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes the footer from the file's last bytes. The checksum is not checked here.
fn parse_footer(
    file_len: u64,
    read_at: &mut dyn FnMut(u64, usize) -> io::Result<Vec<u8>>,
) -> Result<(Footer, u64), ChunkFileError> {
    if file_len < (FOOTER_TAIL + 4) as u64 {
        return Err(corrupt(format!("{file_len} bytes is too short for a Parquet file")));
    }
    let tail =
        read_at(file_len - FOOTER_TAIL as u64, FOOTER_TAIL).map_err(|e| ChunkFileError::io("reading footer", e))?;
    if &tail[4..] != b"PAR1" {
        return Err(corrupt("no Parquet magic at the end (truncated or not Parquet)"));
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let Some(footer_start) = file_len
        .checked_sub(FOOTER_TAIL as u64 + footer_len)
        .filter(|s| *s >= 4)
    else {
        return Err(corrupt(format!("footer length {footer_len} exceeds the file")));
    };
    let footer = read_at(footer_start, footer_len as usize).map_err(|e| ChunkFileError::io("reading footer", e))?;
    let metadata: ParquetMetaData =
        ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| corrupt(format!("unreadable footer: {e}")))?;
    let kv: std::collections::BTreeMap<String, String> = metadata
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    let value = kv
        .get(meta_keys::CHECKSUM)
        .filter(|v| v.len() == CHECKSUM_PLACEHOLDER.len())
        .ok_or_else(|| corrupt("no tickvault checksum in the footer"))?;
    // The value's bytes follow the key's bytes in the Thrift encoding of the footer.
    let key_at =
        find(&footer, meta_keys::CHECKSUM.as_bytes()).ok_or_else(|| corrupt("checksum key not found in the footer"))?;
    let value_at = key_at
        + find(&footer[key_at..], value.as_bytes()).ok_or_else(|| corrupt("checksum value not found in the footer"))?;
    let checksum = if value.as_bytes() == CHECKSUM_PLACEHOLDER {
        None
    } else {
        Some(u64::from_str_radix(value, 16).map_err(|_| corrupt("the checksum in the footer is not hexadecimal"))?)
    };
    let num_rows = u64::try_from(metadata.file_metadata().num_rows()).map_err(|_| corrupt("negative row count"))?;
    Ok((
        Footer {
            kv,
            num_rows,
            file_bytes: file_len,
            checksum,
            checksum_pos: footer_start + value_at as u64,
        },
        footer_start,
    ))
}

fn check_sum(footer: &Footer, actual: u64) -> Result<(), ChunkFileError> {
    match footer.checksum {
        Some(c) if c == actual => Ok(()),
        Some(c) => Err(corrupt(format!(
            "checksum mismatch: footer says {c:016x}, file hashes to {actual:016x}"
        ))),
        None => Err(corrupt("the file was never sealed (no checksum)")),
    }
}

/// Verifies an in-memory sealed file.
///
/// # Errors
/// [`ChunkFileError::Corrupt`] when the bytes are not a sound sealed Parquet file.
pub fn verify_sealed_bytes(data: &[u8]) -> Result<Footer, ChunkFileError> {
    let len = data.len() as u64;
    let (footer, _) = parse_footer(len, &mut |off, n| Ok(data[off as usize..off as usize + n].to_vec()))?;
    let pos = footer.checksum_pos as usize;
    let mut hasher = XxHash3_64::with_seed(0);
    hasher.write(&data[..pos]);
    hasher.write(CHECKSUM_PLACEHOLDER);
    hasher.write(&data[pos + CHECKSUM_PLACEHOLDER.len()..]);
    check_sum(&footer, hasher.finish())?;
    Ok(footer)
}

fn open_footer(path: &Path) -> Result<(File, Footer), ChunkFileError> {
    let read_err = |e| ChunkFileError::io(format!("reading {}", path.display()), e);
    let mut file = File::open(path).map_err(|e| ChunkFileError::io(format!("opening {}", path.display()), e))?;
    let len = file.metadata().map_err(read_err)?.len();
    let (footer, _) = parse_footer(len, &mut |off, n| read_at(&mut file, off, n))?;
    Ok((file, footer))
}

/// Verifies a sealed file on disk, streaming it through the hash (never loading it whole).
///
/// # Errors
/// [`ChunkFileError::Corrupt`] when the file is not sound; [`ChunkFileError::Io`] when it
/// cannot be read.
pub fn verify_sealed_file(path: &Path) -> Result<Footer, ChunkFileError> {
    let read_err = |e| ChunkFileError::io(format!("reading {}", path.display()), e);
    let (mut file, footer) = open_footer(path)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let mut hasher = XxHash3_64::with_seed(0);
    let mut buf = vec![0u8; 1 << 20];
    let mut hash_range = |file: &mut File, mut remaining: u64, hasher: &mut XxHash3_64| -> io::Result<()> {
        while remaining > 0 {
            let want = remaining.min(buf.len() as u64) as usize;
            file.read_exact(&mut buf[..want])?;
            hasher.write(&buf[..want]);
            remaining -= want as u64;
        }
        Ok(())
    };
    let pos = footer.checksum_pos;
    let after = pos + CHECKSUM_PLACEHOLDER.len() as u64;
    hash_range(&mut file, pos, &mut hasher).map_err(read_err)?;
    hasher.write(CHECKSUM_PLACEHOLDER);
    file.seek(SeekFrom::Start(after)).map_err(read_err)?;
    hash_range(&mut file, footer.file_bytes - after, &mut hasher).map_err(read_err)?;
    check_sum(&footer, hasher.finish())?;
    Ok(footer)
}

/// Reads the tickvault metadata of a chunk file, checking it belongs to `expected`.
fn chunk_meta(footer: &Footer, expected: Option<&ChunkKey>) -> Result<ChunkMeta, ChunkFileError> {
    if footer.get(meta_keys::FORMAT) != Some(CHUNK_FORMAT) {
        return Err(corrupt(format!("not a {CHUNK_FORMAT} chunk file")));
    }
    let chunk = footer.get(meta_keys::CHUNK).unwrap_or_default().to_string();
    if let Some(key) = expected
        && chunk != key.to_string()
    {
        return Err(corrupt(format!("file holds chunk '{chunk}', expected '{key}'")));
    }
    let rows: u64 = footer
        .get(meta_keys::ROWS)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt("no row count in the footer"))?;
    if rows != footer.num_rows {
        return Err(corrupt(format!(
            "footer says {rows} rows but the row groups hold {}",
            footer.num_rows
        )));
    }
    let ts = |k| footer.get(k).and_then(|v| v.parse::<i64>().ok());
    Ok(ChunkMeta {
        chunk,
        rows,
        min_ts: ts(meta_keys::MIN_TS),
        max_ts: ts(meta_keys::MAX_TS),
        complete: footer.get(meta_keys::COMPLETE) == Some("true"),
        checksum: footer.checksum.unwrap_or_default(),
        file_bytes: footer.file_bytes,
    })
}

/// Verifies an in-memory chunk file (from the memory or remote tier).
///
/// # Errors
/// [`ChunkFileError::Corrupt`] when the bytes are not a sound chunk file for `expected`.
pub fn verify_bytes(data: &[u8], expected: Option<&ChunkKey>) -> Result<ChunkMeta, ChunkFileError> {
    chunk_meta(&verify_sealed_bytes(data)?, expected)
}

/// Verifies a chunk file on disk.
///
/// # Errors
/// [`ChunkFileError::Corrupt`] when the file is not a sound chunk file for `expected`;
/// [`ChunkFileError::Io`] when it cannot be read.
pub fn verify_file(path: &Path, expected: Option<&ChunkKey>) -> Result<ChunkMeta, ChunkFileError> {
    chunk_meta(&verify_sealed_file(path)?, expected)
}

/// Reads only the footer metadata of a chunk file, without verifying its checksum.
///
/// # Errors
/// Fails when the file cannot be read or has no tickvault footer.
pub fn read_meta(path: &Path) -> Result<ChunkMeta, ChunkFileError> {
    chunk_meta(&open_footer(path)?.1, None)
}

/// Where a chunk file's bytes are: a file on disk or a buffer in memory.
#[derive(Debug, Clone)]
pub enum ChunkData {
    File(Arc<Path>),
    Bytes(Bytes),
}

impl ChunkData {
    /// Opens a batch reader over the chunk file.
    ///
    /// # Errors
    /// Fails when the file cannot be opened or decoded.
    pub fn reader(&self, batch_rows: usize) -> Result<ParquetRecordBatchReader, ChunkFileError> {
        match self {
            ChunkData::File(path) => {
                let f = File::open(path).map_err(|e| ChunkFileError::io(format!("opening {}", path.display()), e))?;
                build_reader(f, batch_rows)
            }
            ChunkData::Bytes(b) => build_reader(b.clone(), batch_rows),
        }
    }
}

fn build_reader<T: ChunkReader + 'static>(
    source: T,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader, ChunkFileError> {
    Ok(ParquetRecordBatchReaderBuilder::try_new(source)?
        .with_batch_size(batch_rows)
        .build()?)
}

/// Stable-sorts all rows of `batches` by `local_timestamp` (rows with equal timestamps keep
/// their file order). Only used for the rare file whose rows are out of order: it holds the
/// whole day in memory.
///
/// # Errors
/// Fails when the batches cannot be concatenated or reordered.
pub fn sort_by_local_ts(data_type: DataType, batches: &[RecordBatch]) -> Result<RecordBatch, ChunkFileError> {
    let all = arrow_select::concat::concat_batches(&data_type.schema(), batches)?;
    let Some(ts) = local_ts(&all) else {
        return Ok(all);
    };
    let values = ts.values();
    let mut idx: Vec<u32> = (0..all.num_rows() as u32).collect();
    idx.sort_by_key(|&i| values[i as usize]);
    let indices = arrow_array::UInt32Array::from(idx);
    let columns: Vec<ArrayRef> = all
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(data_type.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray};
    use jiff::civil::date;

    pub(crate) fn trades_batch(ts: &[i64]) -> RecordBatch {
        let n = ts.len();
        let t = || Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")) as ArrayRef;
        RecordBatch::try_new(
            DataType::Trades.schema(),
            vec![
                Arc::new(StringArray::from(vec!["deribit"; n])),
                Arc::new(StringArray::from(vec!["BTC-PERPETUAL"; n])),
                t(),
                t(),
                Arc::new(StringArray::from(
                    (0..n).map(|i| Some(i.to_string())).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(vec!["buy"; n])),
                Arc::new(Float64Array::from(vec![42000.5; n])),
                Arc::new(Float64Array::from(vec![0.001; n])),
            ],
        )
        .unwrap()
    }

    fn key() -> ChunkKey {
        ChunkKey::new("deribit", DataType::Trades, "BTC-PERPETUAL", date(2024, 1, 1))
    }

    fn write(ts: &[i64]) -> (ChunkMeta, Vec<u8>) {
        let mut w = ChunkFileWriter::new(io::Cursor::new(Vec::new()), DataType::Trades).unwrap();
        w.write(&trades_batch(ts)).unwrap();
        let (meta, cursor) = w.finish(&key(), true).unwrap();
        (meta, cursor.into_inner())
    }

    #[test]
    fn written_files_verify_and_carry_their_metadata() {
        let (meta, bytes) = write(&[3, 5, 5, 9]);
        assert_eq!(meta.rows, 4);
        assert_eq!((meta.min_ts, meta.max_ts), (Some(3), Some(9)));
        assert_eq!(meta.file_bytes, bytes.len() as u64);
        let verified = verify_bytes(&bytes, Some(&key())).unwrap();
        assert_eq!(verified, meta);
        let mut rows = 0;
        for b in ChunkData::Bytes(Bytes::from(bytes)).reader(1024).unwrap() {
            rows += b.unwrap().num_rows();
        }
        assert_eq!(rows, 4);
    }

    #[test]
    fn numbers_and_timestamps_have_statistics_and_strings_do_not() {
        let (_, bytes) = write(&[3, 5, 9]);
        let reader = parquet::file::reader::SerializedFileReader::new(Bytes::from(bytes)).unwrap();
        let rg = parquet::file::reader::FileReader::metadata(&reader)
            .row_group(0)
            .clone();
        for (col, field) in rg.columns().iter().zip(DataType::Trades.schema().fields()) {
            let has_stats = col.statistics().is_some_and(|s| s.min_bytes_opt().is_some());
            let is_string = field.data_type() == &arrow_schema::DataType::Utf8;
            assert_eq!(has_stats, !is_string, "{}", field.name());
        }
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_detected() {
        let (_, bytes) = write(&[1, 2, 3]);
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            // A flip in the footer may still decode; then the checksum or metadata check fails.
            assert!(
                verify_bytes(&b, Some(&key())).is_err(),
                "flip at {i} of {}",
                bytes.len()
            );
        }
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(verify_bytes(&bytes[..cut], Some(&key())).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_file_for_another_chunk_is_refused() {
        let (_, bytes) = write(&[1]);
        let other = ChunkKey::new("deribit", DataType::Trades, "ETH-PERPETUAL", date(2024, 1, 1));
        let err = verify_bytes(&bytes, Some(&other)).unwrap_err().to_string();
        assert!(err.contains("ETH-PERPETUAL"), "{err}");
    }

    #[test]
    fn files_verify_from_disk() {
        let (meta, bytes) = write(&[1, 2]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.parquet");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(verify_file(&p, Some(&key())).unwrap(), meta);
        assert_eq!(read_meta(&p).unwrap(), meta);
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(verify_file(&p, Some(&key())), Err(ChunkFileError::Corrupt(_))));
    }

    #[test]
    fn order_is_tracked_and_sorting_is_stable() {
        let mut w = ChunkFileWriter::new(io::Cursor::new(Vec::new()), DataType::Trades).unwrap();
        w.write(&trades_batch(&[1, 4])).unwrap();
        assert!(w.stats().sorted);
        w.write(&trades_batch(&[3, 3])).unwrap();
        assert!(!w.stats().sorted);
        let sorted = sort_by_local_ts(DataType::Trades, &[trades_batch(&[5, 1, 5, 0])]).unwrap();
        let ts = local_ts(&sorted).unwrap().values().to_vec();
        assert_eq!(ts, vec![0, 1, 5, 5]);
        let ids = sorted.column(4).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((ids.value(2), ids.value(3)), ("0", "2"));
    }
}
