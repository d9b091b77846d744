//! Scripted misbehaviour of the datasets host, one fault per request to a path.

use std::time::Duration;

/// What the next request to a scripted dataset path gets instead of a normal answer.
///
/// Faults are queued per path with [`FakeTardis::script`](crate::FakeTardis::script); each
/// request pops one, and once the queue is empty the path is served normally. Auth failures
/// are decided before a fault is popped, so a 401 does not use one up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status. A JSON error body `{"code":…,"message":…}` is generated
    /// unless `body` is given (served as-is, `application/json` if it starts with `{`).
    /// `retry_after` adds `Retry-After: <seconds>` (Tardis sends whole seconds on 429).
    Status {
        /// HTTP status code.
        code: u16,
        /// Seconds for the `Retry-After` header, if any.
        retry_after: Option<u64>,
        /// Replacement body, if any.
        body: Option<String>,
    },
    /// Wait this long before the response head, then serve normally.
    Delay(Duration),
    /// 200 with the full `Content-Length`, send the first `n` body bytes, then abort the
    /// connection, so the client sees a body error. `n` is capped at the file size minus one
    /// byte: the connection always drops before the body is complete.
    DropAfter(usize),
    /// A complete, well-formed 200 whose body is only the first `n` bytes of the file
    /// (`Content-Length: n`): a truncated gzip that only an integrity check catches.
    Truncate(usize),
    /// 200 with the full file, except that the CRC32 in the gzip trailer (the 4 bytes
    /// before the last 4) is altered: the last member fails its checksum.
    CorruptCrc,
    /// Send `after` bytes, pause for `duration`, then send the rest (read-timeout tests).
    Stall {
        /// Bytes sent before the pause.
        after: usize,
        /// Length of the pause.
        duration: Duration,
    },
}

impl Fault {
    /// A bare status with the generated JSON error body.
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            retry_after: None,
            body: None,
        }
    }

    /// A status with a custom body (e.g. a 400 whose text mentions "ISO 8601 format").
    pub fn status_with_body(code: u16, body: impl Into<String>) -> Fault {
        Fault::Status {
            code,
            retry_after: None,
            body: Some(body.into()),
        }
    }

    /// 429 Too Many Requests, with `Retry-After: <seconds>` when given.
    pub fn too_many_requests(retry_after: Option<u64>) -> Fault {
        Fault::Status {
            code: 429,
            retry_after,
            body: None,
        }
    }

    /// 500 Internal Server Error.
    pub fn internal_error() -> Fault {
        Fault::status(500)
    }
}
