//! A download spool: the body is written to a temporary file while a decoder thread reads it.
//!
//! Downloads and decoding have different limits: up to `--concurrency` bodies in flight (to hide
//! network latency) but only as many decoders as there are cores (CPU). Spooling to disk lets a
//! download run at network speed even while its decoder waits for a core, without holding
//! bodies in memory; the reader follows the file as it grows, so download and decode overlap
//! for a single big file too. On an error the reader sees [`InputError`] and the attempt is
//! thrown away: a retry starts again from byte 0.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use crate::decode::InputError;

#[derive(Debug)]
enum State {
    Writing,
    Done,
    Failed(String),
    /// The reader went away (decode failed or was abandoned); the writer should stop.
    ReaderGone,
}

#[derive(Debug)]
struct Shared {
    /// Bytes durably in the file and safe to read, and the writer's state.
    progress: Mutex<(u64, State)>,
    cv: Condvar,
}

/// Creates a spool file at `path` (which must not exist) and returns its two ends.
///
/// # Errors
/// Fails when the file cannot be created or opened for reading.
pub fn spool(path: PathBuf) -> io::Result<(SpoolWriter, SpoolReader)> {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    let read = File::open(&path)?;
    let shared = Arc::new(Shared {
        progress: Mutex::new((0, State::Writing)),
        cv: Condvar::new(),
    });
    let guard = Arc::new(RemoveOnDrop(path));
    Ok((
        SpoolWriter {
            file,
            shared: shared.clone(),
            _guard: guard.clone(),
            written: 0,
        },
        SpoolReader {
            file: read,
            shared,
            pos: 0,
            _guard: guard,
        },
    ))
}

/// Removes the spool file once both ends are gone.
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The download side.
#[derive(Debug)]
pub struct SpoolWriter {
    file: File,
    shared: Arc<Shared>,
    _guard: Arc<RemoveOnDrop>,
    written: u64,
}

impl SpoolWriter {
    /// Appends a piece of the body. Returns `Ok(false)` when the reader has gone away and the
    /// download can stop.
    ///
    /// # Errors
    /// Fails when the spool file cannot be written (disk full).
    pub fn append(&mut self, data: &[u8]) -> io::Result<bool> {
        // A page-cache write of one network chunk: microseconds, fine on the async thread.
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        let mut p = self.shared.progress.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(p.1, State::ReaderGone) {
            return Ok(false);
        }
        p.0 = self.written;
        self.shared.cv.notify_all();
        Ok(true)
    }

    /// Bytes appended so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Marks the body complete: the reader will see end-of-file after the last byte.
    pub fn finish(self) {
        self.set(State::Done);
    }

    /// Marks the download failed: the reader gets an [`InputError`] with `reason`.
    pub fn fail(self, reason: impl Into<String>) {
        self.set(State::Failed(reason.into()));
    }

    fn set(&self, state: State) {
        let mut p = self.shared.progress.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(p.1, State::ReaderGone) {
            p.1 = state;
        }
        self.shared.cv.notify_all();
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        // Dropped without finish/fail (cancelled): unblock the reader with an error.
        let mut p = self.shared.progress.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(p.1, State::Writing) {
            p.1 = State::Failed("download cancelled".into());
            self.shared.cv.notify_all();
        }
    }
}

/// The decoder side: a blocking [`Read`] that waits for the writer.
#[derive(Debug)]
pub struct SpoolReader {
    file: File,
    shared: Arc<Shared>,
    pos: u64,
    _guard: Arc<RemoveOnDrop>,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = {
            let mut p = self.shared.progress.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if p.0 > self.pos {
                    break p.0 - self.pos;
                }
                match &p.1 {
                    State::Writing => p = self.shared.cv.wait(p).unwrap_or_else(|e| e.into_inner()),
                    State::Done | State::ReaderGone => return Ok(0),
                    State::Failed(reason) => {
                        return Err(io::Error::other(InputError(reason.clone())));
                    }
                }
            }
        };
        let want = buf.len().min(available as usize);
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        let mut p = self.shared.progress.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(p.1, State::Writing) {
            p.1 = State::ReaderGone;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_follows_the_writer_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let (mut w, mut r) = spool(path.clone()).unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        });
        for i in 0..100u8 {
            assert!(w.append(&[i; 1000]).unwrap());
        }
        w.finish();
        let out = reader.join().unwrap().unwrap();
        assert_eq!(out.len(), 100_000);
        assert_eq!(out[99_999], 99);
        assert!(!path.exists(), "the spool file is removed once both ends are gone");
    }

    #[test]
    fn a_failed_download_is_an_input_error_for_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut r) = spool(dir.path().join("s")).unwrap();
        w.append(b"abc").unwrap();
        w.fail("connection reset");
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(err.get_ref().unwrap().is::<InputError>());
        assert_eq!(out, b"abc");
    }

    #[test]
    fn a_dropped_writer_unblocks_the_reader_and_a_dropped_reader_stops_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut r) = spool(dir.path().join("a")).unwrap();
        drop(w);
        assert!(r.read(&mut [0; 8]).is_err());
        let (mut w, r) = spool(dir.path().join("b")).unwrap();
        drop(r);
        assert!(!w.append(b"x").unwrap());
    }
}
