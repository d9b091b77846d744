//! The settings of `tickvault bars`: a download's (tiers, limits, validation, summary) for
//! the trades of the request, plus the intervals, the timestamp bucketed by, `--fill` and
//! `--no-keep-raw`.

use super::options::Options;
use super::{DownloadSettings, OutputSpec, UsageError, defaulted, usage};
use crate::model::{BarTime, DataType, Interval};

/// Everything `tickvault bars` needs, validated.
#[derive(Debug, Clone)]
pub struct BarsSettings {
    /// The download of the request's trades (its data types are `trades`).
    pub download: DownloadSettings,
    /// The bar lengths, in the order given, without duplicates.
    pub intervals: Vec<Interval>,
    /// The timestamp that puts a trade in its bar.
    pub by: BarTime,
    /// Add the empty intervals.
    pub fill: bool,
    /// Keep the raw trades chunks in the tiers.
    pub keep_raw: bool,
}

impl BarsSettings {
    /// Validates the options of `tickvault bars`.
    ///
    /// # Errors
    /// [`UsageError`] naming the flag or key at fault.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        let raw = o.interval.clone().unwrap_or_default();
        let mut intervals: Vec<Interval> = Vec::new();
        for i in raw.iter().filter(|i| !i.trim().is_empty()) {
            let i: Interval = i.parse().map_err(|e| usage(format!("--interval: {e}")))?;
            if !intervals.contains(&i) {
                intervals.push(i);
            }
        }
        if intervals.is_empty() {
            return Err(usage(
                "missing --interval LIST: give the bar lengths, e.g. --interval 1m,1h,1d",
            ));
        }
        let by: BarTime = defaulted(&o.by).parse().map_err(usage)?;
        // Bars are made from trades, whatever a config file's data_types says.
        let mut o = o.clone();
        o.data_types = Some(vec![DataType::Trades.to_string()]);
        let download = DownloadSettings::resolve(&o)?;
        if let OutputSpec::File(p) = &download.output
            && intervals.len() > 1
        {
            return Err(usage(format!(
                "--output {} is one file but {} intervals were asked for: give a directory instead",
                p.display(),
                intervals.len()
            )));
        }
        Ok(Self {
            download,
            intervals,
            by,
            fill: defaulted(&o.fill),
            keep_raw: defaulted(&o.keep_raw),
        })
    }
}
