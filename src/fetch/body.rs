//! One attempt at a chunk: GET the day-file, stream the body into a spool file while a decoder
//! thread turns the spool into the chunk file at the destination. A body that ends early (a
//! reset, fewer bytes than `Content-Length`) fails the attempt; the decoder then sees an input
//! error and the next attempt starts again from byte 0.

use std::path::Path;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use tracing::debug;

use super::job::{DecodeJob, write_chunk_file};
use super::spool::{SpoolWriter, spool};
use super::{FetchError, Fetched, Fetcher};
use crate::cache::chunk_file::ChunkMeta;
use crate::model::{ChunkKey, SpeedMeter, TooSlow};
use crate::tardis::{HttpError, redact_url};

/// What the decode job hands back: the chunk file's metadata and, if asked, the batches.
type Decoded = (ChunkMeta, Option<Vec<arrow_array::RecordBatch>>);

impl Fetcher {
    /// Attempt `n` at fetching `key` into `dest`.
    pub(super) async fn attempt(
        &self,
        key: &ChunkKey,
        dest: &Path,
        complete: bool,
        n: u32,
    ) -> Result<Fetched, FetchError> {
        let permit = self.admission.admit().await.map_err(|stopped| FetchError::Aborted {
            chunk: key.to_string(),
            reason: stopped.0,
        })?;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if n > 1 {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        debug!("GET {} (attempt {n})", key.url_path());
        let response = self.client.get_dataset(key, n).await;
        if let Err(e) = &response {
            self.stop_if_fatal(e);
        }
        // The answer's status is known (and a fatal one recorded): the other chunks may start.
        self.probes.arrive(key);
        let response = response?;
        let expected = response.content_length();
        let seq = self.spool_seq.fetch_add(1, Ordering::Relaxed);
        let spool_path = self
            .spool_dir
            .join(format!("{}{seq}.spool", crate::cache::temps::prefix()));
        let (writer, reader) = spool(spool_path.clone())
            .map_err(|e| FetchError::local(format!("creating spool file {}", spool_path.display()), e))?;

        // Decode on a pool thread once one is free; meanwhile the body keeps spooling.
        let decoders = self.decoders.clone();
        let job = DecodeJob {
            key: key.clone(),
            dest: dest.to_path_buf(),
            complete,
            limits: self.limits,
            mac: self.mac.clone(),
            scratch: self.spool_dir.clone(),
            keep_decoded: self.keep_decoded,
        };
        let decode = tokio::spawn(async move {
            let name = job.key.to_string();
            decoders
                .run(move || write_chunk_file(&job, reader))
                .await
                .unwrap_or_else(|e| Err(FetchError::local(format!("decoding {name}"), e)))
        });

        let url = redact_url(&self.client.dataset_url(key));
        let (writer, failure) = self
            .stream_body(response, writer, &spool_path, &url, expected, &decode)
            .await;
        drop(permit);
        let received = writer.written();
        match failure {
            Some(err) => {
                writer.fail(err.to_string());
                // Wait for the decoder to let go of `dest` before the next attempt reuses it.
                let _ = decode.await;
                Err(err)
            }
            None => {
                writer.finish();
                let (meta, decoded) = decode
                    .await
                    .map_err(|e| FetchError::local(format!("decoding {key}"), e))??;
                Ok(Fetched {
                    meta,
                    body_bytes: received,
                    decoded: decoded.map(Into::into),
                })
            }
        }
    }

    /// Stops the run on an answer every request would get (a refused key, an exhausted quota,
    /// an unreachable host): for good, or for a quota until it resets.
    fn stop_if_fatal(&self, e: &HttpError) {
        if !e.stops_the_run() {
            return;
        }
        match e {
            HttpError::Status { status: 401, .. } => {
                self.admission.stop(format!("Tardis refused the API key ({e})"), None);
            }
            HttpError::QuotaExhausted { retry_after, .. } => {
                self.admission.stop(e.to_string(), Some(*retry_after));
            }
            // Reported once, as the run's error.
            HttpError::Unreachable { .. } => {
                self.set_unreachable(e.to_string());
                self.admission.stop_with(e.to_string(), None, false);
            }
            _ => self.admission.stop(e.to_string(), None),
        }
    }

    fn too_slow(&self, url: &str, slow: TooSlow) -> FetchError {
        HttpError::TooSlow {
            url: url.to_string(),
            bytes: slow.bytes,
            window: self.min_speed.window,
            min_per_sec: self.min_speed.bytes_per_sec,
        }
        .into()
    }

    /// Streams the body into the spool. Returns the writer and the failure, if the body did not
    /// arrive whole.
    async fn stream_body(
        &self,
        response: reqwest::Response,
        mut writer: SpoolWriter,
        spool_path: &Path,
        url: &str,
        expected: Option<u64>,
        decode: &tokio::task::JoinHandle<Result<Decoded, FetchError>>,
    ) -> (SpoolWriter, Option<FetchError>) {
        let mut stream = response.bytes_stream();
        let mut progress = self.stats.body(expected);
        let mut meter = SpeedMeter::start(self.min_speed, std::time::Instant::now());
        loop {
            let next = match meter.time_left(std::time::Instant::now()) {
                None => stream.next().await,
                Some(left) => match tokio::time::timeout(left, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => match meter.check(std::time::Instant::now()) {
                        Ok(()) => continue,
                        Err(slow) => return (writer, Some(self.too_slow(url, slow))),
                    },
                },
            };
            let Some(piece) = next else { break };
            let bytes = match piece {
                Ok(bytes) => bytes,
                Err(e) => {
                    let err = HttpError::Transport {
                        url: url.to_string(),
                        what: "body interrupted",
                        source: e.without_url(),
                    };
                    return (writer, Some(err.into()));
                }
            };
            progress.add(bytes.len() as u64);
            if let Err(slow) = meter.add(bytes.len() as u64, std::time::Instant::now()) {
                return (writer, Some(self.too_slow(url, slow)));
            }
            match writer.append(&bytes) {
                Ok(true) => {}
                // The decoder stopped (its error is the one to report).
                Ok(false) => return (writer, None),
                Err(e) => {
                    let err = FetchError::local(format!("writing spool file {}", spool_path.display()), e);
                    return (writer, Some(err));
                }
            }
        }
        let received = writer.written();
        let short = expected.filter(|&expected| received < expected && !decode.is_finished());
        let failure = short.map(|expected| {
            HttpError::ShortBody {
                url: url.to_string(),
                received,
                expected,
            }
            .into()
        });
        (writer, failure)
    }
}
