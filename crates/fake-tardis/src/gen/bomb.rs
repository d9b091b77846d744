//! Hostile gzip streams made on the fly: gigabytes of inflated content from a few kilobytes of
//! state, for testing that a client bounds what it inflates and how long a line may get.
//!
//! The inflated content is `prefix`, then `fill_len` copies of one `fill` byte, then `suffix`.
//! The fill is compressed once, as a [`BLOCK`]-byte run of the fill byte in a fresh raw-deflate
//! stream ended by a full flush: that output is byte-aligned, not final, and refers to nothing
//! before it, so repeating it back to back is still one valid deflate stream. A final empty
//! block and the gzip trailer (CRC32 and ISIZE of the whole inflated content) close it. The
//! CRC32 of the repeated run comes from combining the block's CRC, not from hashing the run.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Crc, FlushCompress};
use jiff::civil::Date;

use super::{DayParams, day_csv, header};

/// Bytes of fill compressed as one repeatable deflate piece.
pub(crate) const BLOCK: usize = 1 << 20;

/// Target size of the pieces [`GzipBomb::chunks`] yields.
const BATCH: usize = 64 * 1024;

/// A gzip file whose inflated content is `prefix ++ fill × fill_len ++ suffix`, produced as a
/// stream of pieces with memory and CPU independent of `fill_len` (beyond one combine of a
/// CRC per 1 MiB of fill when it is created: ~10 000 cheap steps for 10 GiB).
///
/// ```
/// use fake_tardis::generate::GzipBomb;
/// let bomb = GzipBomb::zeros("trades", 10 << 30); // 10 GiB of zeros after the header line
/// assert!(bomb.compressed_len() < 20 << 20);
/// let header = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n";
/// assert_eq!(bomb.inflated_len(), header.len() as u64 + (10 << 30));
/// ```
#[derive(Debug, Clone)]
pub struct GzipBomb {
    /// gzip header and the deflated prefix.
    head: Bytes,
    /// Copies of the deflated block, back to back (about 64 KiB).
    batch: Bytes,
    /// Bytes of one deflated block inside `batch`.
    block_len: usize,
    /// Blocks in `batch`.
    per_batch: u64,
    /// Whole blocks of fill.
    blocks: u64,
    /// The deflated remainder of the fill and suffix, the final block and the trailer.
    tail: Bytes,
    inflated_len: u64,
    crc: u32,
}

impl GzipBomb {
    /// `prefix`, then `fill_len` bytes of `fill`, then `suffix`, as one gzip member.
    pub fn new(prefix: &[u8], fill: u8, fill_len: u64, suffix: &[u8]) -> GzipBomb {
        let blocks = fill_len / BLOCK as u64;
        let rem = (fill_len % BLOCK as u64) as usize;
        let run = vec![fill; BLOCK];

        let mut crc = Crc::new();
        crc.update(prefix);
        let mut block_crc = Crc::new();
        block_crc.update(&run);
        for _ in 0..blocks {
            crc.combine(&block_crc);
        }
        crc.update(&run[..rem]);
        crc.update(suffix);
        let inflated_len = prefix.len() as u64 + fill_len + suffix.len() as u64;

        // gzip header: magic, deflate, no flags, no mtime, no extra flags, OS = Unix.
        let mut head = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        head.extend(deflate_full(prefix));
        let block = if blocks > 0 { deflate_full(&run) } else { Vec::new() };
        let per_batch = (BATCH / block.len().max(1)).max(1) as u64;
        let batch = block.repeat(per_batch.min(blocks) as usize);
        let mut tail = deflate_full(&run[..rem]);
        tail.extend(deflate_full(suffix));
        // A final, empty block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block.
        tail.extend([0x03, 0x00]);
        tail.extend(crc.sum().to_le_bytes());
        tail.extend((inflated_len as u32).to_le_bytes());
        GzipBomb {
            head: head.into(),
            batch: batch.into(),
            block_len: block.len(),
            per_batch,
            blocks,
            tail: tail.into(),
            inflated_len,
            crc: crc.sum(),
        }
    }

    /// The classic bomb: `data_type`'s header line and `\n`, then `zeros` zero bytes and no
    /// line end. An unknown data type gets the `trades` header.
    pub fn zeros(data_type: &str, zeros: u64) -> GzipBomb {
        let mut prefix = header(data_type).unwrap_or_else(|| header("trades").expect("trades is known"));
        prefix.push('\n');
        GzipBomb::new(prefix.as_bytes(), 0, zeros, b"")
    }

    /// Valid CSV of `data_type` (header and three generated rows of that exchange, symbol
    /// and day) whose middle row has one enormous cell: `len` extra bytes appended to its
    /// `id` (digits `9`, for `trades` and `liquidations`, whose id is free-form) or, for the
    /// other types, to its `symbol` (letters `X`). Every line ends with `\n`. An unknown data
    /// type is treated as `trades`.
    pub fn huge_field(data_type: &str, exchange: &str, symbol: &str, date: Date, len: u64) -> GzipBomb {
        let data_type = if header(data_type).is_some() {
            data_type
        } else {
            "trades"
        };
        let csv = day_csv(data_type, &DayParams::new(exchange, symbol, date, 3));
        let (column, fill) = match data_type {
            "trades" | "liquidations" => (4, b'9'),
            _ => (1, b'X'),
        };
        // Start of the middle row: after the header line and the first row.
        let row = csv.match_indices('\n').nth(1).map_or(csv.len(), |(i, _)| i + 1);
        let cut = csv[row..]
            .match_indices(',')
            .nth(column)
            .map_or(csv.len(), |(i, _)| row + i);
        GzipBomb::new(&csv.as_bytes()[..cut], fill, len, &csv.as_bytes()[cut..])
    }

    /// Bytes of the gzip file (its `Content-Length`).
    pub fn compressed_len(&self) -> u64 {
        self.head.len() as u64 + self.blocks * self.block_len as u64 + self.tail.len() as u64
    }

    /// Bytes of the inflated content.
    pub fn inflated_len(&self) -> u64 {
        self.inflated_len
    }

    /// CRC32 of the inflated content (as written in the trailer).
    pub fn crc32(&self) -> u32 {
        self.crc
    }

    /// The gzip file as pieces of at most about 64 KiB, sharing a few buffers: iterating over
    /// a 10 GiB bomb allocates nothing per piece.
    pub fn chunks(&self) -> impl Iterator<Item = Bytes> + Send + 'static {
        // `per_batch` is at least 1.
        let full = self.blocks / self.per_batch;
        let rest = (self.blocks - full * self.per_batch) as usize * self.block_len;
        let leftover = self.batch.slice(..rest);
        std::iter::once(self.head.clone())
            .chain(std::iter::repeat_n(self.batch.clone(), full as usize))
            .chain(std::iter::once(leftover))
            .chain(std::iter::once(self.tail.clone()))
            .filter(|b| !b.is_empty())
    }

    /// Writes the whole gzip file to `w`.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn write_to(&self, mut w: impl Write) -> io::Result<()> {
        for piece in self.chunks() {
            w.write_all(&piece)?;
        }
        w.flush()
    }

    /// The whole gzip file in memory: for small bombs in unit tests only.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.compressed_len() as usize);
        for piece in self.chunks() {
            out.extend_from_slice(&piece);
        }
        out.freeze()
    }
}

/// `data` as raw deflate from a fresh compressor, ended by a full flush: byte-aligned, not
/// final, and independent of anything before it. Empty input gives no bytes.
fn deflate_full(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return Vec::new();
    }
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 256 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Full)
            .expect("deflate of in-memory bytes cannot fail");
        // The flush is complete once all input is in and the output did not fill up.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity().max(1024));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn small_bombs_inflate_exactly() {
        for (fill_len, suffix) in [
            (0, &b""[..]),
            (1, b"x\n"),
            (BLOCK as u64 - 1, b""),
            (BLOCK as u64, b"end"),
            (3 * BLOCK as u64 + 17, b"!"),
        ] {
            let bomb = GzipBomb::new(b"head\n", 0, fill_len, suffix);
            let gz = bomb.to_bytes();
            assert_eq!(gz.len() as u64, bomb.compressed_len(), "{fill_len}");
            let got = inflate(&gz);
            let mut expect = b"head\n".to_vec();
            expect.resize(5 + fill_len as usize, 0);
            expect.extend_from_slice(suffix);
            assert_eq!(got.len(), expect.len());
            assert!(got == expect, "{fill_len}");
            assert_eq!(bomb.inflated_len(), expect.len() as u64);
            let mut crc = Crc::new();
            crc.update(&expect);
            assert_eq!(bomb.crc32(), crc.sum());
        }
    }

    #[test]
    fn no_prefix_and_another_fill_byte() {
        let bomb = GzipBomb::new(b"", b'7', 2 * BLOCK as u64 + 3, b"");
        let got = inflate(&bomb.to_bytes());
        assert_eq!(got.len(), 2 * BLOCK + 3);
        assert!(got.iter().all(|&b| b == b'7'));
    }

    #[test]
    fn ten_gib_is_cheap_to_describe() {
        let start = std::time::Instant::now();
        let n: u64 = 10 << 30;
        let bomb = GzipBomb::zeros("trades", n);
        let head = header("trades").unwrap().len() as u64 + 1;
        assert_eq!(bomb.inflated_len(), head + n);
        // Deflate cannot beat ~1032:1, and a repeated block should get close.
        assert!(bomb.compressed_len() > n / 1100 && bomb.compressed_len() < n / 900);
        let total: u64 = bomb.chunks().map(|c| c.len() as u64).sum();
        assert_eq!(total, bomb.compressed_len());
        assert!(bomb.chunks().all(|c| c.len() <= 2 * BATCH));
        // ISIZE is the length modulo 2^32.
        let gz_tail = bomb.tail.slice(bomb.tail.len() - 4..);
        assert_eq!(
            u32::from_le_bytes(gz_tail[..].try_into().unwrap()),
            ((head + n) % (1 << 32)) as u32
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn huge_field_keeps_rows_valid() {
        let d = jiff::civil::date(2024, 1, 2);
        for (ty, fill) in [("trades", '9'), ("incremental_book_L2", 'X'), ("nope", '9')] {
            let bomb = GzipBomb::huge_field(ty, "deribit", "BTC-PERPETUAL", d, 100);
            let text = String::from_utf8(inflate(&bomb.to_bytes())).unwrap();
            let lines: Vec<&str> = text.split_terminator('\n').collect();
            assert_eq!(lines.len(), 4, "{ty}");
            assert!(text.ends_with('\n'));
            let cols = lines[0].split(',').count();
            assert!(lines.iter().all(|l| l.split(',').count() == cols), "{ty}");
            let run: String = std::iter::repeat_n(fill, 100).collect();
            assert!(lines[2].contains(&run), "{ty}: {}", lines[2]);
            assert!(lines[2].starts_with("deribit,BTC-PERPETUAL"));
        }
    }
}
