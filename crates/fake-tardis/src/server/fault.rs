//! Scripted misbehaviour of the datasets host, one fault per request to a path.

use std::time::Duration;

/// What the next request to a scripted dataset path gets instead of a normal answer.
///
/// Faults are queued per path with [`FakeTardis::script`](crate::FakeTardis::script); each
/// request pops one, and once the queue is empty the path is served normally. Auth failures
/// are decided before a fault is popped, so a 401 does not use one up.
///
/// [`Html`](Fault::Html), [`GzipBomb`](Fault::GzipBomb), [`HugeLine`](Fault::HugeLine) and
/// [`EchoAuth`](Fault::EchoAuth) replace the answer whether or not the file exists; the
/// byte-level faults ([`DropAfter`](Fault::DropAfter), [`Truncate`](Fault::Truncate),
/// [`CorruptCrc`](Fault::CorruptCrc), [`Stall`](Fault::Stall), [`Trickle`](Fault::Trickle))
/// act on the file, so a missing file still gets its 404.
///
/// The metadata API takes faults too ([`FakeTardis::script_api`](crate::FakeTardis::script_api)):
/// there the byte-level faults act on the JSON body, and `GzipBomb` and `HugeLine` are
/// ignored (the document is served normally).
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
    /// Send the whole body at `bytes_per_sec` (in pieces of about a tenth of a second's
    /// worth, at most 64 KiB), so it takes at least `len / bytes_per_sec` seconds: a sender
    /// that never stalls long enough for a read timeout but never finishes in time either.
    /// `0` is treated as 1 byte per second.
    Trickle {
        /// Bytes per second.
        bytes_per_sec: u64,
    },
    /// Answer `status` (200 for a captive portal, 502/503 for a CDN error page) with an HTML
    /// page and `Content-Type: text/html; charset=utf-8`, as a Wi-Fi login page or a proxy in
    /// front of the real host would.
    Html {
        /// HTTP status code.
        status: u16,
    },
    /// A 200 `text/csv` gzip bomb, streamed: a valid gzip whose inflated content is the
    /// path's data-type header line (the `trades` one for an unknown type) and `\n`, then
    /// `zeros` zero bytes and no line end. The CRC32 and ISIZE are correct and
    /// `Content-Length` is exact, so only a limit on inflated size or line length stops it.
    /// See [`GzipBomb::zeros`](crate::generate::GzipBomb::zeros).
    GzipBomb {
        /// Zero bytes after the header line: up to many GiB (the fake needs ~1 MiB for a moment
        /// to set it up, then streams from ~64 KiB).
        zeros: u64,
    },
    /// A 200 `text/csv` valid gzip of valid CSV for the path's data type, exchange, symbol
    /// and day (header and three rows), whose middle row has one cell `len` bytes longer
    /// than usual. See [`GzipBomb::huge_field`](crate::generate::GzipBomb::huge_field).
    HugeLine {
        /// Extra bytes in the one enormous cell.
        len: u64,
    },
    /// Answer `code` with a JSON error whose message quotes the credentials of the request
    /// verbatim: the API key from `Authorization: Bearer <key>` and the whole header value
    /// (also on a 401, in a `WWW-Authenticate` header). For tests that a client never
    /// repeats a server's error text unfiltered into logs or error messages. On the datasets
    /// host the key check comes first, so only a request with a valid key (or none, on a free
    /// day) reaches this fault; the metadata API checks no key and quotes whatever was sent.
    EchoAuth {
        /// HTTP status code (401 or 403 are the useful ones).
        code: u16,
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

    /// A 200 captive-portal HTML page.
    pub fn html() -> Fault {
        Fault::Html { status: 200 }
    }

    /// The whole body at `bytes_per_sec`.
    pub fn trickle(bytes_per_sec: u64) -> Fault {
        Fault::Trickle { bytes_per_sec }
    }

    /// A 401 whose body (and `WWW-Authenticate` header) quotes the API key sent.
    pub fn unauthorized_quoting_key() -> Fault {
        Fault::EchoAuth { code: 401 }
    }

    /// A 403 whose body quotes the `Authorization` value sent.
    pub fn forbidden_quoting_token() -> Fault {
        Fault::EchoAuth { code: 403 }
    }
}
