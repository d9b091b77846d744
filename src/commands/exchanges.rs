//! `tickvault exchanges [ID] [--symbol PATTERN] [--json]`: what Tardis has, from its metadata
//! API through the same cache as a download's validation (a day's time to live; `--offline`
//! reads the cached copies). Without an ID: every exchange with datasets, its data types and
//! dates (one metadata request per exchange the first time, a few at once). With an ID: its
//! symbols, their types, data types and dates.

use futures::StreamExt;
use jiff::Timestamp;
use serde::Serialize;
use tracing::warn;

use crate::metadata::{Freshness, Metadata, MetadataError};
use crate::run::summary::JSON_SCHEMA;
use crate::run::validate::{PreflightError, unknown_exchange};
use crate::settings::ExchangesSettings;
use crate::tardis::metadata::{DatasetSymbol, ExchangeDetails};
use crate::tardis::{ClientConfig, TardisClient};

/// Exchange details asked for at once when listing.
const LIST_CONCURRENCY: usize = 4;

/// Why `tickvault exchanges` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangesError {
    /// An unknown exchange (exit 2), or metadata that cannot be had.
    #[error(transparent)]
    Metadata(#[from] PreflightError),
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl ExchangesError {
    /// Whether the fix is a different command line (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ExchangesError::Metadata(p) if p.is_usage())
    }
}

/// One exchange in the listing.
#[derive(Debug, Clone, Serialize)]
struct ExchangeRow {
    id: String,
    name: String,
    enabled: bool,
    delisted: bool,
    available_since: Option<Timestamp>,
    available_to: Option<Timestamp>,
    exported_from: Option<Timestamp>,
    exported_until: Option<Timestamp>,
    /// Every data type any of its symbols has; `None` when its details could not be read.
    data_types: Option<Vec<String>>,
}

/// One symbol of an exchange.
#[derive(Debug, Clone, Serialize)]
struct SymbolRow<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    available_since: Option<Timestamp>,
    available_to: Option<Timestamp>,
    data_types: &'a [String],
}

impl<'a> From<&'a DatasetSymbol> for SymbolRow<'a> {
    fn from(s: &'a DatasetSymbol) -> Self {
        Self {
            id: &s.id,
            kind: &s.kind,
            available_since: s.available_since,
            available_to: s.available_to,
            data_types: &s.data_types,
        }
    }
}

fn row(d: &ExchangeDetails) -> ExchangeRow {
    ExchangeRow {
        id: d.id.clone(),
        name: d.name.clone(),
        enabled: d.enabled,
        delisted: d.delisted || d.available_to.is_some(),
        available_since: d.available_since,
        available_to: d.available_to,
        exported_from: d.datasets.as_ref().and_then(|x| x.exported_from),
        exported_until: d.exported_until(),
        data_types: Some(d.data_types()),
    }
}

/// Runs the command: the text for people and, with `--json`, the JSON document.
///
/// # Errors
/// [`ExchangesError`]: an unknown exchange, or metadata that cannot be had.
pub(super) async fn run(settings: &ExchangesSettings) -> Result<String, ExchangesError> {
    let client = if settings.offline {
        None
    } else {
        Some(
            TardisClient::new(ClientConfig {
                // Only the metadata API is used; the datasets URL is never asked.
                datasets_url: settings.api_url.clone(),
                api_url: settings.api_url.clone(),
                api_key: None,
                connect_timeout: settings.connect_timeout,
                read_timeout: settings.read_timeout,
            })
            .map_err(|e| ExchangesError::Client(e.without_url()))?,
        )
    };
    let meta = Metadata::new(&settings.cache_dir, client, settings.retry);
    match &settings.exchange {
        Some(id) => one(settings, &meta, id).await,
        None => all(settings, &meta).await,
    }
}

fn unavailable(e: MetadataError) -> ExchangesError {
    ExchangesError::Metadata(PreflightError::Metadata(e))
}

/// Every exchange with datasets.
async fn all(settings: &ExchangesSettings, meta: &Metadata) -> Result<String, ExchangesError> {
    let list = meta.exchanges(Freshness::Cached).await.map_err(unavailable)?;
    let rows: Vec<ExchangeRow> = futures::stream::iter(list.value.iter().filter(|e| e.has_datasets()))
        .map(|e| async move {
            match meta.exchange(&e.id, Freshness::Cached).await {
                Ok(d) => ExchangeRow {
                    name: if d.value.name.is_empty() {
                        e.name.clone()
                    } else {
                        d.value.name.clone()
                    },
                    ..row(&d.value)
                },
                Err(err) => {
                    warn!("{}: {}", e.id, crate::error::chain(&err));
                    ExchangeRow {
                        id: e.id.clone(),
                        name: e.name.clone(),
                        enabled: e.enabled,
                        delisted: e.available_to.is_some(),
                        available_since: e.available_since,
                        available_to: e.available_to,
                        exported_from: None,
                        exported_until: None,
                        data_types: None,
                    }
                }
            }
        })
        .buffered(LIST_CONCURRENCY)
        .collect()
        .await;
    if settings.json {
        let doc = serde_json::json!({ "schema": JSON_SCHEMA, "exchanges": rows });
        return Ok(doc.to_string());
    }
    let mut table = vec![
        ["ID", "NAME", "SINCE", "UNTIL", "DATA TYPES"]
            .map(String::from)
            .to_vec(),
    ];
    for r in &rows {
        table.push(vec![
            r.id.clone(),
            r.name.clone(),
            r.available_since.map(day_or_instant).unwrap_or_default(),
            until(r.available_to, r.exported_until),
            r.data_types.as_ref().map_or_else(|| "?".into(), |t| t.join(",")),
        ]);
    }
    Ok(format!(
        "{}{} exchanges with datasets; `tickvault exchanges ID` lists one's symbols\n",
        render(&table),
        rows.len()
    ))
}

/// One exchange's symbols.
async fn one(settings: &ExchangesSettings, meta: &Metadata, id: &str) -> Result<String, ExchangesError> {
    let details = match meta.exchange(id, Freshness::Cached).await {
        Ok(d) => d,
        Err(MetadataError::UnknownExchange { id }) => return Err(unknown_exchange(&id, meta).await.into()),
        Err(e) => return Err(unavailable(e)),
    };
    let d = &details.value;
    let pattern = settings.symbol_pattern.as_deref();
    let symbols: Vec<SymbolRow<'_>> = d
        .symbols()
        .iter()
        .filter(|s| pattern.is_none_or(|p| matches(p, &s.id)))
        .map(SymbolRow::from)
        .collect();
    if settings.json {
        let doc = serde_json::json!({ "schema": JSON_SCHEMA, "exchange": row(d), "symbols": symbols });
        return Ok(doc.to_string());
    }
    let mut table = vec![
        ["SYMBOL", "TYPE", "SINCE", "UNTIL", "DATA TYPES"]
            .map(String::from)
            .to_vec(),
    ];
    for s in &symbols {
        table.push(vec![
            s.id.to_string(),
            s.kind.to_string(),
            s.available_since.map(day_or_instant).unwrap_or_default(),
            until(s.available_to, d.exported_until()),
            s.data_types.join(","),
        ]);
    }
    let filtered = pattern.map_or_else(String::new, |p| format!(" matching '{p}'"));
    Ok(format!(
        "{} ({}): data since {}, exported until {}\n{}{} of {} symbols{filtered}\n",
        d.id,
        d.name,
        d.available_since.map(day_or_instant).unwrap_or_else(|| "?".into()),
        d.exported_until().map(day_or_instant).unwrap_or_else(|| "?".into()),
        render(&table),
        symbols.len(),
        d.symbols().len()
    ))
}

/// `availableTo` when set (delisted), else `exported until`.
fn until(available_to: Option<Timestamp>, exported_until: Option<Timestamp>) -> String {
    match (available_to, exported_until) {
        (Some(t), _) => day_or_instant(t),
        (None, Some(t)) => format!("{} (exported)", day_or_instant(t)),
        (None, None) => String::new(),
    }
}

/// `2024-03-05` at midnight UTC, else `2024-03-05T08:00:00Z`.
fn day_or_instant(t: Timestamp) -> String {
    if t.as_second().rem_euclid(86_400) == 0 && t.subsec_nanosecond() == 0 {
        crate::model::TimeRange::label(t)
    } else {
        crate::run::validate::iso(t)
    }
}

/// Whether `id` matches `pattern`: a glob (`*`, `?`) when it has wildcards, else a substring;
/// any case.
pub(crate) fn matches(pattern: &str, id: &str) -> bool {
    let (p, s) = (pattern.to_lowercase(), id.to_lowercase());
    if !p.contains(['*', '?']) {
        return s.contains(&p);
    }
    glob(p.as_bytes(), s.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative matching with backtracking to the last `*`.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Left-aligned columns, two spaces apart.
fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}", w = *w))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_globs_or_substrings_in_any_case() {
        assert!(matches("btc", "BTC-PERPETUAL"));
        assert!(matches("PERP", "BTC-PERPETUAL"));
        assert!(matches("btc-*", "BTC-29MAR24"));
        assert!(!matches("btc-*", "ETH-BTC"));
        assert!(matches("*-?", "BTC-29MAR24-43000-P"));
        assert!(matches("*usdt", "BTCUSDT"));
        assert!(!matches("*usdt", "BTCUSDT_240329"));
        assert!(matches("b*t*c", "BTC") && matches("*", ""));
    }

    #[test]
    fn tables_align_and_dates_shorten_at_midnight() {
        let t = render(&[vec!["A".into(), "xx".into()], vec!["long".into(), "y".into()]]);
        assert_eq!(t, "A     xx\nlong  y\n");
        assert_eq!(day_or_instant("2024-03-05T00:00:00Z".parse().unwrap()), "2024-03-05");
        assert_eq!(
            day_or_instant("2024-03-05T08:00:00Z".parse().unwrap()),
            "2024-03-05T08:00:00Z"
        );
    }
}
