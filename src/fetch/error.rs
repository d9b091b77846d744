//! Why fetching a chunk failed: an HTTP failure from [`crate::tardis`], a body that does not
//! decode, a local file operation, or a policy decision (no key, the run stopped, retries spent).

use std::time::Duration;

use crate::decode::DecodeError;
use crate::tardis::HttpError;

/// Why a chunk could not be fetched from Tardis.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The body could not be decoded; gzip and input errors are transient, the rest are not.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Without an API key only the first day of each month may be downloaded.
    #[error(
        "{chunk}: an API key is required for days other than the first of the month (set --api-key or TARDIS_API_KEY)"
    )]
    KeyRequired {
        /// The chunk.
        chunk: String,
    },
    /// A local file operation failed (spool, chunk file).
    #[error("{what}")]
    Local {
        /// What was being done, naming the file.
        what: String,
        #[source]
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Not attempted because the run was stopped by an earlier fatal answer.
    #[error("{chunk}: not attempted: {reason}")]
    Aborted {
        /// The chunk.
        chunk: String,
        /// Why the run stopped.
        reason: String,
    },
    /// Retries were exhausted, or a later attempt failed for good.
    #[error("gave up after {attempts} attempts over {:.1} s", elapsed.as_secs_f64())]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Time from the first attempt to the last failure.
        elapsed: Duration,
        /// The last attempt's error.
        #[source]
        last: Box<FetchError>,
    },
}

impl FetchError {
    /// A local failure while doing `what`.
    pub(crate) fn local(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Local {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// Whether another attempt may succeed. Each case gives its reason.
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Http(e) => e.retryable(),
            // A truncated gzip or one failing its CRC is a damaged transfer: fetch again.
            // A header mismatch or an unparsable row is in the file itself: retrying cannot help.
            // A body that is not gzip at all (an HTML page from a proxy or captive portal), a
            // line or a day over its limit, are the same on every attempt: final.
            FetchError::Decode(e) => matches!(e, DecodeError::Gzip { .. } | DecodeError::Input { .. }),
            FetchError::KeyRequired { .. }
            | FetchError::Local { .. }
            | FetchError::Aborted { .. }
            | FetchError::GaveUp { .. } => false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Http(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether the next delay is twice the usual (a 500, as the official client does).
    pub fn doubles_the_delay(&self) -> bool {
        matches!(self, FetchError::Http(HttpError::Status { status: 500, .. }))
    }

    /// Why an attempt failed, as counted in the summary's retries by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Http(e) => e.reason(),
            FetchError::Decode(DecodeError::Input { .. }) => "body_interrupted",
            FetchError::Decode(_) => "damaged_body",
            FetchError::KeyRequired { .. } => "no_key",
            FetchError::Local { .. } => "local",
            FetchError::Aborted { .. } => "aborted",
            FetchError::GaveUp { last, .. } => last.reason(),
        }
    }
}
