//! The sealed file: a Parquet file whose footer carries a checksum of every byte of the file.
//!
//! The footer's key/value metadata holds an xxh3-64 checksum of the whole file as written with
//! a placeholder in place of the checksum's own 16 digits, so every byte is covered, the footer
//! included. A reader checks it before trusting a file, so a torn write, a bit flip or a garbage
//! response from a remote cache is detected, never read as rows. Any Parquet reader can still
//! read the file. Cache chunks ([`crate::cache::chunk_file`]) and merged outputs are both sealed.

use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;
use twox_hash::XxHash3_64;

use super::writer::ParallelWriter;
use crate::model::BatchStats;

/// Key/value metadata names shared by every sealed file.
pub mod keys {
    /// The file's format (`chunk-v1`, `output-v1`); a file with another value is not ours.
    pub const FORMAT: &str = "tickvault.format";
    /// xxh3-64 (16 hex digits) of the whole file as it would be with
    /// [`super::CHECKSUM_PLACEHOLDER`] in place of these 16 digits.
    pub const CHECKSUM: &str = "tickvault.xxh3";
    /// Rows in the file.
    pub const ROWS: &str = "tickvault.rows";
    /// The tickvault version that wrote the file.
    pub const VERSION: &str = "tickvault.version";
    /// Where the rows came from: dataset paths and the request (never a credential).
    pub const SOURCE: &str = "tickvault.source";
}

/// Written as the checksum value while the file is hashed, then overwritten by the checksum
/// (same length, so no offset in the file moves).
pub const CHECKSUM_PLACEHOLDER: &[u8; 16] = b"xxh3:unsealed---";
const FOOTER_TAIL: usize = 8;

/// Why a sealed file could not be written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// Reading or writing the file failed.
    #[error("{what}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        #[source]
        /// The cause.
        source: io::Error,
    },
    /// The Parquet encoder or decoder failed.
    #[error("Parquet")]
    Parquet(#[from] ParquetError),
    /// Arrow refused a batch.
    #[error("Arrow")]
    Arrow(#[from] ArrowError),
    /// The bytes are not a sound sealed file (truncated, flipped, foreign, for another chunk).
    #[error("corrupt file: {0}")]
    Corrupt(String),
}

impl SealedError {
    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Self::Corrupt(msg.into())
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
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
    /// The xxh3-64 checksum of the file.
    pub checksum: u64,
    /// Size of the whole file in bytes.
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
    ) -> Result<Self, SealedError> {
        let hashing = HashingWriter {
            inner,
            hasher: XxHash3_64::with_seed(0),
            bytes: 0,
        };
        Ok(Self {
            writer: ParallelWriter::try_new(hashing, schema, props, threads)?,
            stats: BatchStats::default(),
        })
    }

    /// # Errors
    /// Fails on an encoding or I/O error.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SealedError> {
        self.stats.observe(batch);
        self.writer.write(batch)?;
        Ok(())
    }

    /// Appends every row group of `source` (another Parquet file of this schema, described by
    /// `metadata`) without decoding it; `stats` describes its rows.
    ///
    /// # Errors
    /// A schema mismatch, or an I/O error.
    pub fn append_row_groups<R: ChunkReader>(
        &mut self,
        source: &R,
        metadata: &ParquetMetaData,
        stats: &BatchStats,
    ) -> Result<(), SealedError> {
        self.writer.append_row_groups(source, metadata)?;
        self.stats.absorb(stats);
        Ok(())
    }

    /// Closes the row group being encoded, if any (the next rows start a new one).
    ///
    /// # Errors
    /// An encoding or I/O error.
    pub fn flush(&mut self) -> Result<(), SealedError> {
        Ok(self.writer.flush()?)
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
    pub fn finish(mut self, kv: Vec<(&str, String)>) -> Result<(Sealed, W), SealedError> {
        for (k, v) in kv {
            self.writer.append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        let placeholder = String::from_utf8_lossy(CHECKSUM_PLACEHOLDER).into_owned();
        self.writer
            .append_key_value_metadata(KeyValue::new(keys::CHECKSUM.to_string(), placeholder));
        let hashing = self.writer.into_inner()?;
        let checksum = hashing.hasher.finish();
        let file_bytes = hashing.bytes;
        let mut inner = hashing.inner;
        let io = |e| SealedError::io("sealing Parquet file", e);
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

/// Opens an existing file (a staged [`crate::parquet::atomic::AtomicFile`]) for a
/// [`SealedWriter`], which reads its footer back to seal it, and empties it. It is never
/// created here: a staged file that its owner already removed (an interrupted run) must not
/// come back as a stray file.
///
/// # Errors
/// Fails when the file does not exist or cannot be opened.
pub fn reopen_sealed_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .truncate(true)
        .open(path)
}

fn read_at<R: Read + Seek>(r: &mut R, off: u64, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    r.seek(SeekFrom::Start(off))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn corrupt(msg: impl Into<String>) -> SealedError {
    SealedError::Corrupt(msg.into())
}

/// Reads a sealed file's footer without checking its checksum.
///
/// # Errors
/// The file cannot be read or has no sealed footer.
pub fn read_footer(path: &Path) -> Result<Footer, SealedError> {
    open_footer(path).map(|(_, footer)| footer)
}

/// A sealed file's footer: its key/value metadata, row count and checksum.
#[derive(Debug, Clone)]
pub struct Footer {
    /// The key/value metadata.
    pub kv: std::collections::BTreeMap<String, String>,
    /// Rows in the row groups.
    pub num_rows: u64,
    /// Size of the whole file in bytes.
    pub file_bytes: u64,
    /// The checksum as written (`None` while the file is being sealed).
    pub checksum: Option<u64>,
    /// Absolute offset of the checksum's 16 digits in the file.
    pub checksum_pos: u64,
}

impl Footer {
    /// The value of a key/value metadata entry.
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
) -> Result<(Footer, u64), SealedError> {
    if file_len < (FOOTER_TAIL + 4) as u64 {
        return Err(corrupt(format!("{file_len} bytes is too short for a Parquet file")));
    }
    let tail = read_at(file_len - FOOTER_TAIL as u64, FOOTER_TAIL).map_err(|e| SealedError::io("reading footer", e))?;
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
    let footer = read_at(footer_start, footer_len as usize).map_err(|e| SealedError::io("reading footer", e))?;
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
        .get(keys::CHECKSUM)
        .filter(|v| v.len() == CHECKSUM_PLACEHOLDER.len())
        .ok_or_else(|| corrupt("no tickvault checksum in the footer"))?;
    // The value's bytes follow the key's bytes in the Thrift encoding of the footer.
    let key_at =
        find(&footer, keys::CHECKSUM.as_bytes()).ok_or_else(|| corrupt("checksum key not found in the footer"))?;
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

fn check_sum(footer: &Footer, actual: u64) -> Result<(), SealedError> {
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
/// [`SealedError::Corrupt`] when the bytes are not a sound sealed Parquet file.
pub fn verify_sealed_bytes(data: &[u8]) -> Result<Footer, SealedError> {
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

fn open_footer(path: &Path) -> Result<(File, Footer), SealedError> {
    let read_err = |e| SealedError::io(format!("reading {}", path.display()), e);
    let mut file = File::open(path).map_err(|e| SealedError::io(format!("opening {}", path.display()), e))?;
    let len = file.metadata().map_err(read_err)?.len();
    let (footer, _) = parse_footer(len, &mut |off, n| read_at(&mut file, off, n))?;
    Ok((file, footer))
}

/// Verifies a sealed file on disk, streaming it through the hash (never loading it whole).
///
/// # Errors
/// [`SealedError::Corrupt`] when the file is not sound; [`SealedError::Io`] when it
/// cannot be read.
pub fn verify_sealed_file(path: &Path) -> Result<Footer, SealedError> {
    let read_err = |e| SealedError::io(format!("reading {}", path.display()), e);
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
