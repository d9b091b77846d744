//! The chunk file: one day of one symbol and data type as a sealed Parquet file.
//!
//! Every tier stores the same bytes. Besides the sealed file's checksum (see
//! [`crate::parquet::sealed`]), the footer carries the chunk key, row count, `local_timestamp`
//! bounds and whether Tardis had finished exporting the day. A tier verifies a chunk file
//! against the key it was asked for before returning it, so a file for another chunk, a torn
//! write or a garbage response is a miss, never bad rows in the output.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;

use crate::model::{ChunkKey, DataType};
use crate::parquet::encodings::chunk_properties;
use crate::parquet::mac::MacKey;
use crate::parquet::sealed::{
    Footer, SealedError, SealedWriter, keys, read_footer, verify_sealed_bytes_with, verify_sealed_file_with,
};
use arrow_array::RecordBatch;

/// Key/value metadata names of chunk files (besides the sealed file's own, [`keys`]).
pub mod chunk_keys {
    /// The chunk key, `exchange/data_type/SYMBOL/YYYY-MM-DD`.
    pub const CHUNK: &str = "tickvault.chunk";
    /// Smallest `local_timestamp` (µs).
    pub const MIN_TS: &str = "tickvault.min_local_timestamp";
    /// Largest `local_timestamp` (µs).
    pub const MAX_TS: &str = "tickvault.max_local_timestamp";
    /// `false` when Tardis had not finished exporting the day: such an entry is never served as a hit.
    pub const COMPLETE: &str = "tickvault.complete";
}

/// The value of [`keys::FORMAT`] this version writes and accepts.
pub const CHUNK_FORMAT: &str = "chunk-v1";

/// What a chunk file says about itself, read from its footer and checked against its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// The chunk key as written (`exchange/data_type/SYMBOL/YYYY-MM-DD`).
    pub chunk: String,
    /// Rows in the file.
    pub rows: u64,
    /// Smallest `local_timestamp` (µs); `None` for a day without rows.
    pub min_ts: Option<i64>,
    /// Largest `local_timestamp` (µs); `None` for a day without rows.
    pub max_ts: Option<i64>,
    /// Whether Tardis had finished exporting the day when it was fetched.
    pub complete: bool,
    /// The sealed file's checksum.
    pub checksum: u64,
    /// Size of the whole file in bytes.
    pub file_bytes: u64,
}

/// Streams record batches into a chunk file and seals it.
pub struct ChunkFileWriter<W: Write + Read + Seek + Send>(SealedWriter<W>);

impl<W: Write + Read + Seek + Send> ChunkFileWriter<W> {
    /// # Errors
    /// Fails when the Parquet writer cannot be created.
    pub fn new(inner: W, data_type: DataType) -> Result<Self, SealedError> {
        Self::with_mac(inner, data_type, None)
    }

    /// As [`Self::new`]; with `mac` (the team key and the chunk's key) the file carries the team
    /// MAC, so a remote copy can be authenticated.
    ///
    /// # Errors
    /// Fails when the Parquet writer cannot be created.
    pub fn with_mac(inner: W, data_type: DataType, mac: Option<(&MacKey, &ChunkKey)>) -> Result<Self, SealedError> {
        Self::with_schema(inner, data_type.schema(), chunk_properties(data_type), mac)
    }

    /// A chunk file of another schema (a derived chunk's), with the team MAC when `mac` is given.
    ///
    /// # Errors
    /// Fails when the Parquet writer cannot be created.
    pub fn with_schema(
        inner: W,
        schema: arrow_schema::SchemaRef,
        props: parquet::file::properties::WriterProperties,
        mac: Option<(&MacKey, &ChunkKey)>,
    ) -> Result<Self, SealedError> {
        let context = mac.map(|(_, key)| key.to_string());
        let mac = mac.zip(context.as_deref()).map(|((k, _), c)| (k, c));
        Ok(Self(SealedWriter::with_mac(inner, schema, props, 1, mac)?))
    }

    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SealedError> {
        self.0.write(batch)
    }

    /// Statistics of the rows written so far (order, bounds).
    pub fn stats(&self) -> &crate::model::BatchStats {
        self.0.stats()
    }

    /// Seals the file with the chunk's metadata. Returns the metadata and the inner writer.
    ///
    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn finish(self, key: &ChunkKey, complete: bool) -> Result<(ChunkMeta, W), SealedError> {
        self.finish_with(key, complete, Vec::new())
    }

    /// [`Self::finish`] with more key/value metadata (e.g. a partition's row range).
    ///
    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn finish_with(
        self,
        key: &ChunkKey,
        complete: bool,
        extra: Vec<(&str, String)>,
    ) -> Result<(ChunkMeta, W), SealedError> {
        let s = self.0.stats().clone();
        let mut kv = vec![
            (keys::FORMAT, CHUNK_FORMAT.to_string()),
            (chunk_keys::CHUNK, key.to_string()),
            (keys::ROWS, s.rows.to_string()),
            (chunk_keys::COMPLETE, complete.to_string()),
            (keys::VERSION, crate::VERSION.to_string()),
            (keys::SOURCE, format!("tardis-datasets:{}", key.url_path())),
        ];
        if let (Some(min), Some(max)) = (s.min_ts, s.max_ts) {
            kv.push((chunk_keys::MIN_TS, min.to_string()));
            kv.push((chunk_keys::MAX_TS, max.to_string()));
        }
        kv.extend(extra);
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

/// Reads the tickvault metadata of a chunk file, checking it belongs to `expected`.
fn chunk_meta(footer: &Footer, expected: Option<&ChunkKey>) -> Result<ChunkMeta, SealedError> {
    if footer.get(keys::FORMAT) != Some(CHUNK_FORMAT) {
        return Err(SealedError::corrupt(format!("not a {CHUNK_FORMAT} chunk file")));
    }
    let chunk = footer.get(chunk_keys::CHUNK).unwrap_or_default().to_string();
    if let Some(key) = expected
        && chunk != key.to_string()
    {
        return Err(SealedError::corrupt(format!(
            "file holds chunk '{chunk}', expected '{key}'"
        )));
    }
    let rows: u64 = footer
        .get(keys::ROWS)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| SealedError::corrupt("no row count in the footer"))?;
    if rows != footer.num_rows {
        return Err(SealedError::corrupt(format!(
            "footer says {rows} rows but the row groups hold {}",
            footer.num_rows
        )));
    }
    let ts = |k| footer.get(k).and_then(|v| v.parse::<i64>().ok());
    Ok(ChunkMeta {
        chunk,
        rows,
        min_ts: ts(chunk_keys::MIN_TS),
        max_ts: ts(chunk_keys::MAX_TS),
        complete: footer.get(chunk_keys::COMPLETE) == Some("true"),
        checksum: footer.checksum.unwrap_or_default(),
        file_bytes: footer.file_bytes,
    })
}

/// Verifies an in-memory chunk file (from the memory or remote tier).
///
/// # Errors
/// [`SealedError::Corrupt`] when the bytes are not a sound chunk file for `expected`.
pub fn verify_bytes(data: &[u8], expected: Option<&ChunkKey>) -> Result<ChunkMeta, SealedError> {
    chunk_meta(&verify_sealed_bytes_with(data, None)?, expected)
}

/// Verifies an in-memory chunk file for `key`, and its team MAC when `mac` is given.
///
/// # Errors
/// [`SealedError::Corrupt`] when the bytes are not a sound chunk file for `key` or the MAC does
/// not verify.
pub fn verify_bytes_mac(data: &[u8], key: &ChunkKey, mac: Option<&MacKey>) -> Result<ChunkMeta, SealedError> {
    let context = key.to_string();
    chunk_meta(
        &verify_sealed_bytes_with(data, mac.map(|m| (m, context.as_str())))?,
        Some(key),
    )
}

/// Verifies a chunk file on disk for `key`, and its team MAC when `mac` is given.
///
/// # Errors
/// As [`verify_file`], and [`SealedError::Corrupt`] when the MAC does not verify.
pub fn verify_file_mac(path: &Path, key: &ChunkKey, mac: Option<&MacKey>) -> Result<ChunkMeta, SealedError> {
    let context = key.to_string();
    chunk_meta(
        &verify_sealed_file_with(path, mac.map(|m| (m, context.as_str())))?,
        Some(key),
    )
}

/// Verifies a chunk file on disk.
///
/// # Errors
/// [`SealedError::Corrupt`] when the file is not a sound chunk file for `expected`;
/// [`SealedError::Io`] when it cannot be read.
pub fn verify_file(path: &Path, expected: Option<&ChunkKey>) -> Result<ChunkMeta, SealedError> {
    chunk_meta(&verify_sealed_file_with(path, None)?, expected)
}

/// Reads only the footer metadata of a chunk file, without verifying its checksum.
///
/// # Errors
/// Fails when the file cannot be read or has no tickvault footer.
pub fn read_meta(path: &Path) -> Result<ChunkMeta, SealedError> {
    chunk_meta(&read_footer(path)?, None)
}

/// Where a chunk file's bytes are: a file on disk or a buffer in memory.
#[derive(Debug, Clone)]
pub enum ChunkData {
    /// A file on disk.
    File(Arc<Path>),
    /// A temporary file on disk (a remote object streamed down), removed when the last clone
    /// is dropped.
    Temp(Arc<tempfile::TempPath>),
    /// Bytes in memory.
    Bytes(Bytes),
}

impl ChunkData {
    /// The file holding the bytes, unless they are in memory.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ChunkData::File(p) => Some(p),
            ChunkData::Temp(t) => Some(t),
            ChunkData::Bytes(_) => None,
        }
    }

    /// Opens a batch reader over the chunk file.
    ///
    /// # Errors
    /// Fails when the file cannot be opened or decoded.
    pub fn reader(&self, batch_rows: usize) -> Result<ParquetRecordBatchReader, SealedError> {
        self.reader_of(batch_rows, None)
    }

    /// Opens a batch reader over some columns of the chunk file (`columns`: indices of the
    /// file's top-level columns; the batches hold them in file order).
    ///
    /// # Errors
    /// Fails when the file cannot be opened or decoded.
    pub fn reader_of(
        &self,
        batch_rows: usize,
        columns: Option<&[usize]>,
    ) -> Result<ParquetRecordBatchReader, SealedError> {
        match (self, self.path()) {
            (ChunkData::Bytes(b), _) => build_reader(b.clone(), batch_rows, columns),
            (_, Some(path)) => {
                let f = File::open(path).map_err(|e| SealedError::io(format!("opening {}", path.display()), e))?;
                build_reader(f, batch_rows, columns)
            }
            (_, None) => unreachable!("only bytes have no path"),
        }
    }
}

fn build_reader<T: ChunkReader + 'static>(
    source: T,
    batch_rows: usize,
    columns: Option<&[usize]>,
) -> Result<ParquetRecordBatchReader, SealedError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(source)?.with_batch_size(batch_rows);
    let builder = match columns {
        Some(c) => {
            let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), c.iter().copied());
            builder.with_projection(mask)
        }
        None => builder,
    };
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use std::io;

    fn trades_batch(ts: &[i64]) -> RecordBatch {
        crate::model::testing::trades_batch("BTC-PERPETUAL", ts)
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
    fn numbers_timestamps_and_the_symbol_have_statistics_and_other_strings_do_not() {
        let (_, bytes) = write(&[3, 5, 9]);
        let reader = parquet::file::reader::SerializedFileReader::new(Bytes::from(bytes)).unwrap();
        let rg = parquet::file::reader::FileReader::metadata(&reader)
            .row_group(0)
            .clone();
        for (col, field) in rg.columns().iter().zip(DataType::Trades.schema().fields()) {
            let has_stats = col.statistics().is_some_and(|s| s.min_bytes_opt().is_some());
            let is_string = field.data_type() == &arrow_schema::DataType::Utf8;
            let constant = matches!(field.name().as_str(), "exchange" | "symbol");
            assert_eq!(has_stats, !is_string || constant, "{}", field.name());
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
        assert!(matches!(verify_file(&p, Some(&key())), Err(SealedError::Corrupt(_))));
    }

    #[test]
    fn a_team_mac_authenticates_the_bytes_and_the_key() {
        let team = MacKey::from_secret("team");
        let mut w =
            ChunkFileWriter::with_mac(io::Cursor::new(Vec::new()), DataType::Trades, Some((&team, &key()))).unwrap();
        w.write(&trades_batch(&[1, 2])).unwrap();
        let (meta, cur) = w.finish(&key(), true).unwrap();
        let bytes = cur.into_inner();
        assert_eq!(
            verify_bytes(&bytes, Some(&key())).unwrap(),
            meta,
            "the checksum still verifies"
        );
        assert_eq!(verify_bytes_mac(&bytes, &key(), Some(&team)).unwrap(), meta);
        let other = MacKey::from_secret("forger");
        let e = verify_bytes_mac(&bytes, &key(), Some(&other)).unwrap_err().to_string();
        assert!(e.contains("team MAC does not verify"), "{e}");
        // A correctly sealed file without a MAC (what a forger can make) is refused.
        let (_, plain) = write(&[1, 2]);
        let e = verify_bytes_mac(&plain, &key(), Some(&team)).unwrap_err().to_string();
        assert!(e.contains("no team MAC"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.parquet");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(verify_file_mac(&p, &key(), Some(&team)).unwrap(), meta);
        assert!(verify_file_mac(&p, &key(), Some(&other)).is_err());
    }

    #[test]
    fn order_is_tracked() {
        let mut w = ChunkFileWriter::new(io::Cursor::new(Vec::new()), DataType::Trades).unwrap();
        w.write(&trades_batch(&[1, 4])).unwrap();
        assert!(w.stats().sorted);
        w.write(&trades_batch(&[3, 3])).unwrap();
        assert!(!w.stats().sorted);
    }
}
