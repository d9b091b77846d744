//! Pure domain types: data types and their schemas, chunk keys, time ranges. No I/O here.

mod chunk;
mod data_type;

pub use chunk::{
    CACHE_LAYOUT_VERSION, ChunkKey, RangeError, TimeRange, day_start, fs_component, normalize_symbol, parse_instant,
    valid_exchange,
};
pub use data_type::{
    Column, ColumnKind, DataType, LOCAL_TIMESTAMP, LOCAL_TIMESTAMP_INDEX, UnknownDataType, timestamp_type,
};
