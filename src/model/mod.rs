//! Pure domain types: data types and their schemas, chunk keys, time ranges, facts about
//! decoded batches. No I/O here.

mod batch;
mod chunk;
mod data_type;
mod derivation;
mod range;
mod speed;
#[cfg(test)]
pub(crate) mod testing;

pub use batch::{BatchStats, local_ts};
pub(crate) use chunk::percent_decode;
pub use chunk::{CACHE_LAYOUT_VERSION, ChunkKey, fs_component, normalize_symbol, valid_exchange};
pub use data_type::{Column, ColumnKind, DataType, LOCAL_TIMESTAMP, LOCAL_TIMESTAMP_INDEX, Sizing, UnknownDataType};
pub use derivation::{BARS_VERSION, BarTime, DAY_MICROS, Derivation, Interval};
pub use range::{RangeError, TimeRange, day_start, parse_instant, parse_instant_at};
pub use speed::{MinSpeed, SpeedMeter, TooSlow};
