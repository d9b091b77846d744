//! Parquet mechanics shared by cache chunks and outputs: the sealed (self-checksummed) file,
//! the parallel column encoder, the column encodings tuned for Tardis data, and atomic
//! temp-file-then-rename writes.

pub mod atomic;
pub mod encodings;
pub mod mac;
pub mod sealed;
pub mod writer;
