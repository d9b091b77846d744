//! Outputs to object stores: `-o s3://bucket/prefix/` (and `gs://`, `az://`, `file://`).
//!
//! The output is written as usual into a staging directory under the cache directory
//! ([`staging_dir`]), then each file is published to the store: a single `PUT` up to
//! [`SINGLE_PUT_MAX`], else a multipart upload of [`PART_SIZE`] parts (at most four in flight,
//! so memory stays bounded), made visible only by its completion and aborted on any failure
//! or interruption. A reader of the store sees the previous object or the new one, complete,
//! never a part. The staged file is removed once published. On s3, gs and az the upload's id
//! is recorded under the staging directory until it is completed or aborted, so that the next
//! run aborts an upload a killed process left.
//!
//! An identical re-run is a no-op in the store too: a merged output's fingerprint and request
//! are read from the existing object's footer (one ranged `GET` of its tail) before anything
//! is written; any other file is compared by size and tail (the footer holds its checksum).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use url::Url;

use super::{OutputError, OutputResult, OutputStatus};

/// Files up to this size are sent in one `PUT` (atomic by itself).
pub const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
/// Parts of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 4;
/// How long aborting an unfinished multipart upload may take (within the run's 5 s wind-down
/// after a signal).
const ABORT_TIMEOUT: Duration = Duration::from_secs(4);
/// The tail read to compare an object's footer (a longer footer costs a second `GET`).
const TAIL: u64 = 64 * 1024;

/// The schemes an output URL may have.
pub const OUTPUT_SCHEMES: [&str; 6] = ["s3", "gs", "az", "azure", "abfs", "abfss"];

/// Where the output of `url` is staged: `{cache-dir}/outputs/{hash of the URL}`.
pub fn staging_dir(cache_dir: &Path, url: &Url) -> PathBuf {
    let hash = twox_hash::XxHash3_64::oneshot_with_seed(0, url.as_str().as_bytes());
    cache_dir.join("outputs").join(format!("{hash:016x}"))
}

/// An object store that receives the outputs.
#[derive(Clone)]
pub struct OutputStore {
    store: Arc<dyn ObjectStore>,
    /// For s3, gs and az: uploads with ids, recorded so that the next run aborts the ones a
    /// killed process left; and the URL's key prefix.
    parts: Option<(Arc<dyn MultipartStore>, String)>,
    url: Url,
    staging: PathBuf,
}

impl std::fmt::Debug for OutputStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStore").field("url", &self.url.as_str()).finish()
    }
}

/// What the store holds where a merged output goes.
pub enum Existing {
    /// Nothing.
    Missing,
    /// This very output (same fingerprint): nothing to do.
    Same(OutputResult),
    /// The output of another request.
    Other(String),
    /// An older output of this request, or something unreadable: replaced.
    Stale,
}

impl OutputStore {
    /// Opens the store of `url`, staging under `staging`. No request is sent.
    ///
    /// # Errors
    /// The URL cannot be a store.
    pub fn open(url: &Url, staging: &Path, connect_timeout: Duration) -> Result<Self, OutputError> {
        // A single-file URL: the store is its directory, the file a key in it.
        let url = if url.path().ends_with(".parquet") {
            url.join("./").unwrap_or_else(|_| url.clone())
        } else {
            url.clone()
        };
        let opts = crate::cache::store_url::StoreOptions {
            token: None,
            basic: None,
            timeout: Duration::from_secs(60),
            connect_timeout,
        };
        let open_err = |e: String| OutputError::Io {
            what: "opening the output store",
            path: PathBuf::from(url.as_str()),
            source: std::io::Error::other(e),
        };
        let built = crate::cache::store_url::build(&url, &opts).map_err(open_err)?;
        let parts = crate::cache::store_url::multipart_store(&url, &opts)
            .map_err(open_err)?
            .map(|m| (m, crate::cache::store_url::key_prefix(&url)));
        Ok(Self {
            store: built.store,
            parts,
            url,
            staging: staging.to_path_buf(),
        })
    }

    /// The object key of a staged file, and its URL for people.
    pub(crate) fn key(&self, staged: &Path) -> Result<(StorePath, String), OutputError> {
        let rel = staged.strip_prefix(&self.staging).map_err(|_| OutputError::Io {
            what: "publishing",
            path: staged.to_path_buf(),
            source: std::io::Error::other("not under the staging directory"),
        })?;
        let rel = rel.to_string_lossy().replace('\\', "/");
        let shown = format!("{}/{rel}", self.url.as_str().trim_end_matches('/'));
        let key = StorePath::parse(&rel).map_err(|e| OutputError::Io {
            what: "naming",
            path: PathBuf::from(&shown),
            source: std::io::Error::other(e),
        })?;
        Ok((key, shown))
    }

    fn err(shown: &str, what: &'static str) -> impl Fn(object_store::Error) -> OutputError {
        let path = PathBuf::from(shown);
        move |e| OutputError::Io {
            what,
            path: path.clone(),
            source: std::io::Error::other(e),
        }
    }

    /// The object's size and its last `n` bytes, if it exists.
    async fn tail(&self, key: &StorePath, shown: &str, n: u64) -> Result<Option<(u64, Bytes)>, OutputError> {
        let opts = GetOptions {
            range: Some(GetRange::Suffix(n)),
            ..GetOptions::default()
        };
        match self.store.get_opts(key, opts).await {
            Ok(r) => {
                let size = r.meta.size;
                let bytes = r.bytes().await.map_err(Self::err(shown, "reading the tail of"))?;
                Ok(Some((size, bytes)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::err(shown, "reading the tail of")(e)),
        }
    }

    /// The Parquet footer's key/value metadata of the object, if it exists and is Parquet.
    async fn footer(
        &self,
        key: &StorePath,
        shown: &str,
    ) -> Result<Option<(u64, Option<parquet::file::metadata::ParquetMetaData>)>, OutputError> {
        let Some((size, mut tail)) = self.tail(key, shown, TAIL).await? else {
            return Ok(None);
        };
        let footer_len = |t: &Bytes| -> Option<u64> {
            let n = t.len();
            if n < 8 || &t[n - 4..] != b"PAR1" {
                return None;
            }
            Some(u64::from(u32::from_le_bytes(t[n - 8..n - 4].try_into().ok()?)))
        };
        let Some(len) = footer_len(&tail) else {
            return Ok(Some((size, None)));
        };
        if len + 8 > tail.len() as u64 && len + 8 <= size {
            match self.tail(key, shown, len + 8).await? {
                Some((_, t)) => tail = t,
                None => return Ok(None),
            }
        }
        let n = tail.len();
        let Some(start) = n.checked_sub(8 + len as usize) else {
            return Ok(Some((size, None)));
        };
        let meta = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&tail[start..n - 8]).ok();
        Ok(Some((size, meta)))
    }

    /// What the store holds where the merged output staged at `staged` goes.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn merged_state(
        &self,
        staged: &Path,
        data_type: &str,
        fingerprint: &str,
        identity: &str,
    ) -> Result<Existing, OutputError> {
        let (key, shown) = self.key(staged)?;
        let Some((size, meta)) = self.footer(&key, &shown).await? else {
            return Ok(Existing::Missing);
        };
        let Some(meta) = meta else { return Ok(Existing::Stale) };
        let file = meta.file_metadata();
        let kv = |k: &str| {
            file.key_value_metadata()
                .and_then(|kv| kv.iter().find(|e| e.key == k))
                .and_then(|e| e.value.clone())
        };
        match kv(super::target::keys::REQUEST) {
            Some(r) if r != identity => return Ok(Existing::Other(r)),
            None => return Ok(Existing::Other("a file tickvault did not write".into())),
            Some(_) => {}
        }
        if kv(super::merged::META_INPUTS).as_deref() != Some(fingerprint) {
            return Ok(Existing::Stale);
        }
        debug!("{shown} is up to date");
        Ok(Existing::Same(OutputResult {
            data_type: data_type.to_string(),
            path: PathBuf::from(shown),
            rows: u64::try_from(file.num_rows()).unwrap_or(0),
            bytes: size,
            status: OutputStatus::UpToDate,
            chunks_from_memory: 0,
            complete: kv(super::target::keys::COMPLETE).as_deref() != Some("false"),
            exported_until: kv(super::target::keys::EXPORTED_UNTIL),
        }))
    }

    /// Publishes the output staged at `result.path` (a file, or a partitioned table's root),
    /// removing the staged files; `result` then names the store's URL.
    ///
    /// # Errors
    /// A file cannot be read or uploaded; what was uploaded stays (each object is complete).
    pub async fn publish(
        &self,
        mut result: OutputResult,
        cancel: &CancellationToken,
    ) -> Result<OutputResult, OutputError> {
        let staged = result.path.clone();
        let files = if staged.is_dir() {
            let root = staged.clone();
            tokio::task::spawn_blocking(move || staged_files(&root))
                .await
                .unwrap_or_default()
        } else if staged.is_file() {
            vec![staged.clone()]
        } else {
            // A shard with no chunk of this data type: nothing to publish.
            Vec::new()
        };
        self.abort_left_uploads().await;
        let mut uploaded = false;
        for f in &files {
            uploaded |= self.publish_file(f, cancel).await?;
            let _ = tokio::fs::remove_file(f).await;
        }
        if uploaded {
            result.status = OutputStatus::Written;
        } else if result.status == OutputStatus::Written {
            result.status = OutputStatus::UpToDate;
        }
        result.path = PathBuf::from(self.key(&staged)?.1);
        Ok(result)
    }

    /// Uploads one staged file unless the store holds the same bytes (same size and tail).
    /// Returns whether it uploaded.
    async fn publish_file(&self, file: &Path, cancel: &CancellationToken) -> Result<bool, OutputError> {
        let (key, shown) = self.key(file)?;
        let io = |what| OutputError::io(what, file);
        let size = tokio::fs::metadata(file).await.map_err(io("reading"))?.len();
        if let Some((remote_size, remote_tail)) = self.tail(&key, &shown, TAIL).await?
            && remote_size == size
            && remote_tail == local_tail(file, size).await.map_err(io("reading"))?
        {
            debug!("{shown} is up to date");
            return Ok(false);
        }
        if size > SINGLE_PUT_MAX {
            return match &self.parts {
                Some((mp, prefix)) => {
                    self.recorded_multipart(mp, prefix, file, &key, &shown, size, cancel)
                        .await
                }
                None => self.multipart(file, &key, &shown, cancel).await,
            }
            .map(|()| true);
        }
        let put = async {
            let bytes = tokio::fs::read(file).await.map_err(io("reading"))?;
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(Self::err(&shown, "uploading to"))
        };
        // Dropping the PUT on interruption leaves nothing: S3, GCS and Azure store an object
        // only once its whole body arrived.
        tokio::select! {
            r = put => r.map(|_| true),
            () = cancel.cancelled() => Err(interrupted(&shown)),
        }
    }

    /// A multipart upload of `file`, aborted on failure or interruption; only its completion
    /// makes the object visible.
    async fn multipart(
        &self,
        file: &Path,
        key: &StorePath,
        shown: &str,
        cancel: &CancellationToken,
    ) -> Result<(), OutputError> {
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(Self::err(shown, "starting an upload to"))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let sent: Result<(), OutputError> = async {
            let mut f = tokio::fs::File::open(file)
                .await
                .map_err(OutputError::io("reading", file))?;
            let mut buf = vec![0u8; PART_SIZE];
            loop {
                let n = read_full(&mut f, &mut buf)
                    .await
                    .map_err(OutputError::io("reading", file))?;
                // Room for one more part (or, at the end, every part sent).
                let room = if n == 0 { 0 } else { PARTS_IN_FLIGHT };
                tokio::select! {
                    r = writer.wait_for_capacity(room) => r.map_err(Self::err(shown, "uploading to"))?,
                    () = cancel.cancelled() => return Err(interrupted(shown)),
                }
                if n == 0 {
                    return Ok(());
                }
                writer.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(Self::err(shown, "completing the upload to"))?;
                Ok(())
            }
            Err(e) => {
                // Bounded: a store that does not answer leaves the parts to its lifecycle rule.
                match tokio::time::timeout(ABORT_TIMEOUT, writer.abort()).await {
                    Ok(Ok(())) => debug!("aborted the upload to {shown}"),
                    _ => tracing::warn!("could not abort the unfinished upload to {shown}; no reader sees it"),
                }
                Err(e)
            }
        }
    }
}

/// Where this process records its multipart uploads: `{staging}/.uploads/upload-{pid}-{n}`.
const JOURNAL: &str = ".uploads";

impl OutputStore {
    /// A multipart upload whose id is recorded under the staging directory until it is
    /// completed or aborted, so that an upload a killed process left is aborted by the next
    /// run ([`Self::abort_left_uploads`]). Parts are read from the file as they go, at most
    /// [`PARTS_IN_FLIGHT`] at once.
    #[allow(clippy::too_many_arguments)]
    async fn recorded_multipart(
        &self,
        mp: &Arc<dyn MultipartStore>,
        prefix: &str,
        file: &Path,
        key: &StorePath,
        shown: &str,
        size: u64,
        cancel: &CancellationToken,
    ) -> Result<(), OutputError> {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            StorePath::from(format!("{prefix}/{key}"))
        };
        let id = mp
            .create_multipart(&full)
            .await
            .map_err(Self::err(shown, "starting an upload to"))?;
        let entry = self.record(&full, &id).await;
        let parts = size.div_ceil(PART_SIZE as u64) as usize;
        let sent: Result<(), OutputError> = async {
            let uploads = futures::stream::iter(0..parts)
                .map(|i| {
                    let (mp, full, id) = (mp.clone(), full.clone(), id.clone());
                    async move {
                        let bytes = read_part(file, i).await.map_err(OutputError::io("reading", file))?;
                        mp.put_part(&full, &id, i, PutPayload::from(bytes))
                            .await
                            .map_err(Self::err(shown, "uploading to"))
                    }
                })
                .buffered(PARTS_IN_FLIGHT)
                .try_collect::<Vec<PartId>>();
            let ids = tokio::select! {
                r = uploads => r?,
                () = cancel.cancelled() => return Err(interrupted(shown)),
            };
            mp.complete_multipart(&full, &id, ids)
                .await
                .map_err(Self::err(shown, "completing the upload to"))?;
            Ok(())
        }
        .await;
        let mut settled = sent.is_ok();
        if sent.is_err() {
            match tokio::time::timeout(ABORT_TIMEOUT, mp.abort_multipart(&full, &id)).await {
                Ok(Ok(())) => {
                    settled = true;
                    debug!("aborted the upload to {shown}");
                }
                _ => tracing::warn!("could not abort the unfinished upload to {shown} now; the next run does"),
            }
        }
        // An upload neither completed nor aborted stays recorded for the next run.
        if settled && let Some(entry) = entry {
            let _ = tokio::fs::remove_file(&entry).await;
        }
        sent
    }

    /// Records an upload's key and id; `None` when it cannot (the upload goes on: an
    /// unrecorded one is only left to the bucket's lifecycle rule if this process is killed).
    async fn record(&self, full: &StorePath, id: &str) -> Option<PathBuf> {
        let dir = self.staging.join(JOURNAL);
        let entry = dir.join(format!("upload-{}-{:08x}", std::process::id(), fastrand::u32(..)));
        let text = format!("{full}\n{id}\n");
        let written = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(&entry, text).await
        }
        .await;
        match written {
            Ok(()) => Some(entry),
            Err(e) => {
                tracing::warn!("cannot record the upload to {full} in {}: {e}", dir.display());
                None
            }
        }
    }

    /// Aborts the multipart uploads recorded by processes that no longer run (killed during
    /// an upload): their parts are never visible, and this frees them.
    async fn abort_left_uploads(&self) {
        let Some((mp, _)) = &self.parts else { return };
        let Ok(mut dir) = tokio::fs::read_dir(self.staging.join(JOURNAL)).await else {
            return;
        };
        while let Ok(Some(e)) = dir.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("upload-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if crate::cache::temps::alive(pid) {
                continue;
            }
            let Ok(text) = tokio::fs::read_to_string(e.path()).await else {
                continue;
            };
            let mut lines = text.lines();
            if let (Some(path), Some(id)) = (lines.next(), lines.next()) {
                let path = StorePath::from(path);
                match mp.abort_multipart(&path, &id.to_string()).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        debug!("aborted an upload to {path} left by process {pid}");
                    }
                    Err(err) => {
                        tracing::warn!("cannot abort an upload to {path} left by process {pid}: {err}");
                        continue;
                    }
                }
            }
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

/// Part `i` ([`PART_SIZE`] bytes, the last one shorter) of `file`.
async fn read_part(file: &Path, i: usize) -> std::io::Result<Bytes> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(file).await?;
    f.seek(std::io::SeekFrom::Start((i * PART_SIZE) as u64)).await?;
    let mut buf = vec![0u8; PART_SIZE];
    let n = read_full(&mut f, &mut buf).await?;
    buf.truncate(n);
    Ok(Bytes::from(buf))
}

/// The error of an upload cut short by Ctrl-C or SIGTERM.
fn interrupted(shown: &str) -> OutputError {
    OutputError::Io {
        what: "uploading to",
        path: PathBuf::from(shown),
        source: std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"),
    }
}

/// Reads until `buf` is full or the file ends.
async fn read_full(f: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let m = f.read(&mut buf[n..]).await?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(n)
}

/// The last [`TAIL`] bytes of a local file.
async fn local_tail(file: &Path, size: u64) -> std::io::Result<Bytes> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(file).await?;
    let start = size.saturating_sub(TAIL);
    f.seek(std::io::SeekFrom::Start(start)).await?;
    let mut buf = Vec::with_capacity((size - start) as usize);
    f.read_to_end(&mut buf).await?;
    Ok(Bytes::from(buf))
}

/// The finished Parquet files under a staged table (not temporary files).
fn staged_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else { continue };
        for e in read.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
