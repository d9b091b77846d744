//! A fixed pool of threads for CPU-bound jobs (decoding chunks).
//!
//! Decoding on tokio's blocking pool spread successive chunks over ever more threads (the pool
//! grows whenever all its threads are busy, e.g. with cache lookups), and each thread's
//! allocator cache kept what that thread had used: peak memory grew with the number of chunks
//! in a run (issue 4: 422 MB for 10 days, 802 MB for 30). A fixed set of threads, one per core,
//! bounds it by the pool size instead. The queue is unbounded: the caller bounds how many jobs
//! are submitted.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs jobs on a fixed number of threads, in submission order.
#[derive(Debug)]
pub struct Pool {
    tx: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The pool has been shut down.
#[derive(Debug, thiserror::Error)]
#[error("the decode thread pool is shut down")]
pub struct PoolClosed;

impl Pool {
    /// Starts `n` (at least one) threads named `{name}-{i}`.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn new(name: &str, n: usize) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..n.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                    loop {
                        // Hold the lock only to take a job, not while running it.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Runs `f` on a pool thread and returns its result. A job that panics loses its result
    /// (the error says so) but not the thread.
    ///
    /// # Errors
    /// [`PoolClosed`] after shutdown, or when the job panicked.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, PoolClosed> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            if let Ok(v) = out {
                let _ = done.send(v);
            }
        });
        {
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            tx.as_ref().ok_or(PoolClosed)?.send(job).map_err(|_| PoolClosed)?;
        }
        result.await.map_err(|_| PoolClosed)
    }

    /// Stops taking jobs and waits for the threads to finish the queued ones.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test(flavor = "multi_thread")]
    async fn jobs_run_on_the_fixed_threads_only() {
        let pool = Arc::new(Pool::new("test", 2).unwrap());
        let mut names = HashSet::new();
        let mut handles = Vec::new();
        for i in 0..20 {
            let pool = pool.clone();
            handles.push(tokio::spawn(async move {
                pool.run(move || (i * 2, std::thread::current().name().unwrap_or_default().to_string()))
                    .await
                    .unwrap()
            }));
        }
        for (i, h) in handles.into_iter().enumerate() {
            let (v, name) = h.await.unwrap();
            assert_eq!(v, i * 2);
            names.insert(name);
        }
        assert!(
            names.len() <= 2 && names.iter().all(|n| n.starts_with("test-")),
            "{names:?}"
        );
        pool.shutdown();
        assert!(pool.run(|| 1).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_panicking_job_is_an_error_and_the_pool_survives() {
        let pool = Pool::new("test", 1).unwrap();
        assert!(pool.run(|| panic!("boom")).await.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
