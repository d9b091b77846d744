//! The Tardis.dev HTTP APIs: the datasets host (day-files) and the metadata API (exchanges),
//! the ways a request fails, and the secrets it carries.

mod client;
mod error;
pub mod metadata;
mod secret;

pub use client::{ClientConfig, MAX_RETRY_AFTER, TardisClient};
pub use error::HttpError;
pub use secret::{Secret, redact_raw, redact_url};
