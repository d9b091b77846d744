//! `--shard K/N`: this worker's share of the chunks of a request, so that N workers started
//! by an existing scheduler (a Kubernetes Indexed Job, a Slurm or AWS Batch array, a CI
//! matrix) split one pull between them with no coordinator.
//!
//! The shares are a pure function of the request (every chunk of [`Plan::new`], before any
//! day is withheld) and N: deterministic, disjoint and complete, whatever each worker finds in
//! the caches or the metadata when it starts. They are balanced by the expected bytes of each
//! chunk ([`super::estimate::expected_bytes`], the same model on every worker) and, among
//! chunks of equal weight, by count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::plan::Plan;
use crate::model::ChunkKey;

/// The most shards a request may be split into.
pub const MAX_SHARDS: u32 = 100_000;

/// One worker's shard: `index` is 0-based, shown 1-based (`2/3`) as Jest and Playwright do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index, below `count`.
    pub index: u32,
    /// How many shards the request is split into.
    pub count: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// The array schedulers `--shard auto` knows: (name, index variable, base of the index,
/// count variable if the scheduler sets one).
const SCHEDULERS: [(&str, &str, u32, Option<&str>); 5] = [
    ("Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", 0, None),
    (
        "Slurm job array",
        "SLURM_ARRAY_TASK_ID",
        0,
        Some("SLURM_ARRAY_TASK_COUNT"),
    ),
    ("AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", 0, None),
    ("GitLab CI parallel job", "CI_NODE_INDEX", 1, Some("CI_NODE_TOTAL")),
    (
        "CircleCI parallelism",
        "CIRCLE_NODE_INDEX",
        0,
        Some("CIRCLE_NODE_TOTAL"),
    ),
];

/// Parses `--shard`: `K/N` (1-based), `auto` or `auto/N` (the index, and the count where the
/// scheduler sets one, read through `env`).
///
/// # Errors
/// A one-line message naming the flag, or the variable, at fault.
pub fn parse(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let raw = raw.trim();
    let (k, n) = raw.split_once('/').map_or((raw, None), |(k, n)| (k, Some(n)));
    let count = n
        .map(|n| {
            n.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_SHARDS).contains(n))
                .ok_or_else(|| format!("invalid --shard '{raw}': N must be a whole number from 1 to {MAX_SHARDS}"))
        })
        .transpose()?;
    if k.trim().eq_ignore_ascii_case("auto") {
        return from_env(raw, count, env);
    }
    let bad = || format!("invalid --shard '{raw}': expected K/N (1-based, e.g. 1/3 to 3/3), auto or auto/N");
    let k: u32 = k.trim().parse().map_err(|_| bad())?;
    let count = count.ok_or_else(bad)?;
    if !(1..=count).contains(&k) {
        return Err(format!(
            "invalid --shard '{raw}': K must be from 1 to {count} (shards count from 1)"
        ));
    }
    Ok(Shard { index: k - 1, count })
}

/// `--shard auto[/N]`: the first scheduler whose index variable is set.
fn from_env(raw: &str, given: Option<u32>, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let var = |name: &str| -> Result<Option<u32>, String> {
        env(name)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("--shard {raw}: {name}='{v}' is not a whole number"))
            })
            .transpose()
    };
    for (scheduler, index_var, base, count_var) in SCHEDULERS {
        let Some(mut index) = var(index_var)? else { continue };
        let mut env_count = match count_var {
            Some(c) => var(c)?,
            None => None,
        };
        if index_var == "SLURM_ARRAY_TASK_ID" {
            (index, env_count) = slurm(raw, index, env_count, &var)?;
        }
        if index < base {
            return Err(format!("--shard {raw}: {index_var}={index} is below {base}"));
        }
        let index = index - base;
        let count = match (given, env_count) {
            (Some(g), Some(e)) if g != e => {
                return Err(format!(
                    "--shard {raw}: the {scheduler} says {e} tasks ({}), not {g}",
                    count_var.unwrap_or_default()
                ));
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                return Err(format!(
                    "--shard auto: the {scheduler} sets {index_var} but not the number of tasks: give it as --shard auto/N"
                ));
            }
        };
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("--shard {raw}: {count} tasks: expected 1 to {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "--shard {raw}: {index_var} gives task {} of {count}: beyond the last",
                index + 1
            ));
        }
        return Ok(Shard { index, count });
    }
    let vars: Vec<&str> = SCHEDULERS.iter().map(|s| s.1).collect();
    Err(format!(
        "--shard auto: none of {} is set; give --shard K/N (e.g. from a CI matrix)",
        vars.join(", ")
    ))
}

/// A Slurm array's task: arrays may start at any index and step (`--array=5-11:3`), so the
/// index is `(ID - MIN) / STEP`. Arrays of listed ids (`--array=1,4,9`) have no such rule:
/// they are refused when the ID does not fall on the step.
fn slurm(
    raw: &str,
    id: u32,
    count: Option<u32>,
    var: &dyn Fn(&str) -> Result<Option<u32>, String>,
) -> Result<(u32, Option<u32>), String> {
    let min = var("SLURM_ARRAY_TASK_MIN")?
        .ok_or_else(|| format!("--shard {raw}: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not"))?;
    let step = var("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
    let offset = id
        .checked_sub(min)
        .ok_or_else(|| format!("--shard {raw}: SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"))?;
    if offset % step != 0 {
        return Err(format!(
            "--shard {raw}: SLURM_ARRAY_TASK_ID={id} is not on the array's step ({min} + k×{step}); \
             use a range array (--array=0-N) or --shard K/N"
        ));
    }
    Ok((offset / step, count))
}

/// The shard (0-based) of each of `keys`, in their order: heaviest first (ties by key),
/// each to the least loaded shard so far (ties to the lowest index). A pure function of the
/// set of keys, their weights and `count`.
pub fn assign(keys: &[ChunkKey], count: u32, weight: impl Fn(&ChunkKey) -> u64) -> Vec<u32> {
    let count = count.max(1);
    let mut order: Vec<(u64, &ChunkKey, usize)> = keys.iter().enumerate().map(|(i, k)| (weight(k), k, i)).collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut load: BinaryHeap<Reverse<(u128, u32)>> = (0..count).map(|s| Reverse((0, s))).collect();
    let mut out = vec![0; keys.len()];
    for (w, _, i) in order {
        let Reverse((l, s)) = load.pop().expect("count >= 1");
        out[i] = s;
        load.push(Reverse((l + u128::from(w), s)));
    }
    out
}

/// This shard's part of `plan`: the requests, outputs and withheld days of its chunks only.
/// The shares are computed over every chunk of the request, so withheld days do not move
/// chunks between workers.
#[must_use]
pub fn share(mut plan: Plan, shard: Shard, all: &[ChunkKey], weight: impl Fn(&ChunkKey) -> u64) -> Plan {
    let mine: std::collections::HashSet<&ChunkKey> = all
        .iter()
        .zip(assign(all, shard.count, weight))
        .filter(|(_, s)| *s == shard.index)
        .map(|(k, _)| k)
        .collect();
    plan.requests.retain(|(k, _)| mine.contains(k));
    for (_, keys) in &mut plan.per_type {
        keys.retain(|k| mine.contains(k));
    }
    plan.withheld.retain(|k| mine.contains(k));
    plan
}

/// The plan of `request`, cut to `shard`'s share when there is one.
pub fn planned(request: &super::plan::Request, shard: Option<Shard>) -> Plan {
    let plan = Plan::new(request);
    match shard {
        None => plan,
        Some(shard) => {
            let all: Vec<ChunkKey> = plan.requests.iter().map(|(k, _)| k.clone()).collect();
            share(plan, shard, &all, |k| super::estimate::expected_bytes(k.data_type))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DataType;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |k| map.get(k).cloned()
    }

    fn keys(symbols: usize, days: usize, types: &[DataType]) -> Vec<ChunkKey> {
        let start: jiff::civil::Date = "2024-01-01".parse().unwrap();
        let mut out = Vec::new();
        for &t in types {
            for s in 0..symbols {
                for d in 0..days {
                    let date = start.checked_add(jiff::Span::new().days(d as i64)).unwrap();
                    out.push(ChunkKey::new("binance-futures", t, format!("S{s}"), date));
                }
            }
        }
        out
    }

    #[test]
    fn k_of_n_is_one_based() {
        let none = env(&[]);
        assert_eq!(parse("1/3", &none), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(parse("3/3", &none).unwrap().to_string(), "3/3");
        for bad in ["0/3", "4/3", "1/0", "x/3", "3", "1/", "/3", "-1/3", "1/100001"] {
            assert!(parse(bad, &none).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_reads_each_schedulers_variables() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(parse("auto/3", &k8s), Ok(Shard { index: 2, count: 3 }));
        assert!(parse("auto", &k8s).unwrap_err().contains("auto/N"));
        assert!(parse("auto/2", &k8s).is_err(), "index 2 of 2 is beyond the last");

        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(parse("auto", &slurm), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(parse("auto/4", &slurm), Ok(Shard { index: 2, count: 4 }));
        assert!(parse("auto/3", &slurm).unwrap_err().contains("says 4"));
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "11"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_STEP", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(parse("auto", &stepped), Ok(Shard { index: 2, count: 3 }));
        let off_step = env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_STEP", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert!(parse("auto", &off_step).is_err());
        assert!(parse("auto", &env(&[("SLURM_ARRAY_TASK_ID", "1")])).is_err());

        let batch = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "0")]);
        assert_eq!(parse("auto/10", &batch), Ok(Shard { index: 0, count: 10 }));
        let gitlab = env(&[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "3")]);
        assert_eq!(parse("auto", &gitlab), Ok(Shard { index: 2, count: 3 }));
        assert!(parse("auto", &env(&[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "3")])).is_err());
        let circle = env(&[("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "2")]);
        assert_eq!(parse("auto", &circle), Ok(Shard { index: 1, count: 2 }));

        assert!(parse("auto", &env(&[])).unwrap_err().contains("none of"));
        assert!(parse("auto/3", &env(&[("JOB_COMPLETION_INDEX", "x")])).is_err());
    }

    #[test]
    fn every_chunk_is_in_exactly_one_share_for_many_n() {
        let all = keys(
            7,
            13,
            &[DataType::Trades, DataType::IncrementalBookL2, DataType::Liquidations],
        );
        let weight = |k: &ChunkKey| super::super::estimate::expected_bytes(k.data_type);
        for n in 1..=40 {
            let a = assign(&all, n, weight);
            assert_eq!(a.len(), all.len());
            assert!(a.iter().all(|&s| s < n));
            // Deterministic and independent of the order the keys come in.
            let mut rev = all.clone();
            rev.reverse();
            let mut b = assign(&rev, n, weight);
            b.reverse();
            assert_eq!(a, b, "n={n}");
            // The shares, taken one by one as the workers take them, cover every chunk once.
            let mut seen = HashMap::new();
            for index in 0..n {
                let plan = Plan {
                    requests: all.iter().map(|k| (k.clone(), false)).collect(),
                    per_type: vec![],
                    withheld: Default::default(),
                };
                for (k, _) in share(plan, Shard { index, count: n }, &all, weight).requests {
                    *seen.entry(k).or_insert(0) += 1;
                }
            }
            assert_eq!(seen.len(), all.len(), "n={n}");
            assert!(seen.values().all(|&c| c == 1), "n={n}");
        }
    }

    #[test]
    fn shares_are_balanced_by_bytes_then_by_count() {
        // Equal weights: counts differ by at most one.
        let all = keys(5, 11, &[DataType::Trades]);
        for n in 1..=20 {
            let mut counts = vec![0; n as usize];
            for s in assign(&all, n, |_| 1) {
                counts[s as usize] += 1;
            }
            assert!(
                counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
                "{counts:?}"
            );
        }
        // Mixed weights: no share exceeds the mean by more than the heaviest chunk.
        let all = keys(
            6,
            30,
            &[
                DataType::Trades,
                DataType::IncrementalBookL2,
                DataType::DerivativeTicker,
            ],
        );
        let weight = |k: &ChunkKey| super::super::estimate::expected_bytes(k.data_type);
        let total: u64 = all.iter().map(weight).sum();
        let heaviest = all.iter().map(weight).max().unwrap();
        for n in [2, 3, 7, 10] {
            let mut load = vec![0u64; n as usize];
            for (k, s) in all.iter().zip(assign(&all, n, weight)) {
                load[s as usize] += weight(k);
            }
            let mean = total / u64::from(n);
            assert!(load.iter().all(|&l| l <= mean + heaviest), "n={n}: {load:?}");
        }
    }
}
