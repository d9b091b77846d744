//! Seeded "fault storms": a reproducible random run of faults per dataset path.

use super::fault::Fault;
use crate::r#gen::rng::{Rng, fnv1a};

/// The odds of each fault in a storm (see [`FakeTardis::script_storm`]).
///
/// Weights are relative (they need not add up to 100). For each path the storm draws from
/// the mix again and again: a fault is queued and the draw repeats; `ok` ends the path's
/// script, so that request and every later one is served normally. After
/// `max_faults_per_path` faults the script ends anyway, so every path succeeds by its
/// `max_faults_per_path + 1`-th request at the latest.
///
/// The default mix: 30 % 429 with `Retry-After: 1`, 20 % a 5xx (500, 502, 503 or 504,
/// equally likely), 20 % the connection dropped mid-body ([`Fault::DropAfter`]), 20 % a
/// truncated but well-formed body ([`Fault::Truncate`]), 10 % success; at most 3 faults
/// per path.
///
/// [`FakeTardis::script_storm`]: crate::FakeTardis::script_storm
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormMix {
    /// Weight of `429 Too Many Requests` with `Retry-After: retry_after_secs`.
    pub too_many_requests: u32,
    /// Weight of a 5xx: 500, 502, 503 or 504 with the JSON error body.
    pub server_error: u32,
    /// Weight of a 200 whose connection drops after a random part of the body.
    pub drop_mid_body: u32,
    /// Weight of a complete 200 that holds only a random prefix of the file.
    pub truncated: u32,
    /// Weight of serving the file normally, which ends the path's script.
    pub ok: u32,
    /// The most faults queued for one path.
    pub max_faults_per_path: usize,
    /// Seconds in the `Retry-After` header of the 429s.
    pub retry_after_secs: u64,
}

impl Default for StormMix {
    fn default() -> Self {
        StormMix {
            too_many_requests: 30,
            server_error: 20,
            drop_mid_body: 20,
            truncated: 20,
            ok: 10,
            max_faults_per_path: 3,
            retry_after_secs: 1,
        }
    }
}

impl StormMix {
    /// The same mix with another cap on faults per path.
    #[must_use]
    pub fn max_faults(mut self, k: usize) -> Self {
        self.max_faults_per_path = k;
        self
    }

    /// The faults a storm with `seed` queues for `path`, whose file is `body_len` bytes long
    /// (`None` when unknown: byte offsets are then drawn below 64 KiB).
    ///
    /// The kinds of faults depend only on `seed`, `path` and the mix; the byte offsets of
    /// drops and truncations are a seeded fraction of `body_len`, always short of the whole
    /// body. Each path has its own random stream, so adding paths to a storm does not change
    /// the scripts of the others.
    pub fn script_for(&self, path: &str, seed: u64, body_len: Option<u64>) -> Vec<Fault> {
        let mut rng = Rng::new(seed ^ fnv1a(path.as_bytes()).rotate_left(29));
        let weights = [
            self.too_many_requests,
            self.server_error,
            self.drop_mid_body,
            self.truncated,
            self.ok,
        ];
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut faults = Vec::new();
        while faults.len() < self.max_faults_per_path && total > 0 {
            let mut pick = rng.below(total);
            let kind = weights
                .iter()
                .position(|&w| {
                    let hit = pick < u64::from(w);
                    pick = pick.saturating_sub(u64::from(w));
                    hit
                })
                .expect("pick is below the sum of the weights");
            // Always draw the same number of values, so offsets do not shift later kinds.
            let a = rng.next_u64();
            let offset = |a: u64| match body_len {
                Some(len) => ((u128::from(a) * u128::from(len)) >> 64) as usize,
                None => (a % 65_536) as usize,
            };
            faults.push(match kind {
                0 => Fault::too_many_requests(Some(self.retry_after_secs)),
                1 => Fault::status([500, 502, 503, 504][(a % 4) as usize]),
                2 => Fault::DropAfter(offset(a)),
                3 => Fault::Truncate(offset(a)),
                _ => break,
            });
        }
        faults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(f: &Fault) -> &'static str {
        match f {
            Fault::Status { code: 429, .. } => "429",
            Fault::Status { code, .. } if *code >= 500 => "5xx",
            Fault::DropAfter(_) => "drop",
            Fault::Truncate(_) => "truncate",
            _ => "other",
        }
    }

    #[test]
    fn reproducible_bounded_and_seed_dependent() {
        let mix = StormMix::default();
        let a = mix.script_for("deribit/trades/2024/01/02/X.csv.gz", 7, Some(10_000));
        assert_eq!(a, mix.script_for("deribit/trades/2024/01/02/X.csv.gz", 7, Some(10_000)));
        let scripts: Vec<Vec<Fault>> = (0..50)
            .map(|s| mix.script_for("deribit/trades/2024/01/02/X.csv.gz", s, Some(10_000)))
            .collect();
        assert!(scripts.iter().all(|s| s.len() <= 3));
        assert!(scripts.iter().any(|s| s != &a), "other seeds give other scripts");
        for s in &scripts {
            for f in s {
                match f {
                    Fault::DropAfter(n) | Fault::Truncate(n) => assert!(*n < 10_000),
                    Fault::Status {
                        code: 429, retry_after, ..
                    } => assert_eq!(*retry_after, Some(1)),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn follows_the_mix() {
        let mix = StormMix::default().max_faults(1);
        let mut counts = std::collections::BTreeMap::<&str, u32>::new();
        for i in 0..10_000 {
            let s = mix.script_for(&format!("p{i}"), 1, None);
            *counts.entry(s.first().map_or("ok", kind)).or_default() += 1;
        }
        for (k, pct) in [("429", 30), ("5xx", 20), ("drop", 20), ("truncate", 20), ("ok", 10)] {
            let got = counts[k];
            assert!(got.abs_diff(pct * 100) < 250, "{k}: {got} of 10000 ({counts:?})");
        }
        let only_ok = StormMix {
            too_many_requests: 0,
            server_error: 0,
            drop_mid_body: 0,
            truncated: 0,
            ..StormMix::default()
        };
        assert!(only_ok.script_for("p", 1, None).is_empty());
        let never_ok = StormMix {
            ok: 0,
            ..StormMix::default().max_faults(5)
        };
        assert_eq!(never_ok.script_for("p", 1, None).len(), 5);
    }
}
