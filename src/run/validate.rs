//! The checks between the settings and the run: the request against Tardis's metadata
//! (exchange, symbols, data types, dates), days that have not begun, and which days Tardis
//! has not finished exporting ([`super::publication`]). Settings stay free of network and side
//! effects; this step is the first that asks the network, and it runs before any dataset
//! request, so a mistake costs no transfer.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use tracing::warn;

use super::plan::Request;
use super::publication::{self, Publication};
use crate::metadata::suggest::{closest, did_you_mean};
use crate::metadata::{Freshness, Metadata, MetadataError};
use crate::model::day_start;
use crate::settings::{DownloadSettings, UsageError};
use crate::tardis::metadata::{DatasetSymbol, ExchangeDetails};

/// Why a run must not start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The request asks for something that does not exist (exit 2).
    #[error(transparent)]
    Invalid(#[from] UsageError),
    /// The metadata needed to check the request could not be had.
    #[error("cannot check the request against Tardis's metadata (--no-validate skips the check)")]
    Metadata(#[source] MetadataError),
}

impl PreflightError {
    /// Whether the fix is a different command line (exit 2) rather than a retry (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PreflightError::Invalid(_) | PreflightError::Metadata(MetadataError::NotCached { .. })
        )
    }
}

/// Checks the request and finds which of its days are exported; waits for them with `--wait`.
///
/// # Errors
/// [`PreflightError::Invalid`] naming the value at fault with the closest valid ones;
/// [`PreflightError::Metadata`] when the metadata cannot be had (unless `--no-validate`).
pub(crate) async fn preflight(settings: &DownloadSettings, meta: &Metadata) -> Result<Publication, PreflightError> {
    let request = &settings.request;
    let now = Timestamp::now();
    check_not_future(request, now)?;
    let days = request.range.days();
    if !settings.validate {
        warn!("--no-validate: the exchange, symbols, data types and dates are not checked against Tardis's metadata");
        // The API is not asked (it may be down); a cached copy still says what is exported.
        let cached = meta.exchange_cached(&request.exchange).await;
        return Ok(Publication::assumed(
            cached.and_then(|d| d.value.exported_until()),
            &days,
            now,
        ));
    }
    let details = validated(request, meta).await?;
    let mut publication = Publication::new(details.value.exported_until(), &days, now);
    // A cached exportedUntil may be a day old: ask again before calling days unpublished.
    if details.cached
        && !publication.incomplete.is_empty()
        && !meta.offline()
        && let Ok(fresh) = meta.exchange(&request.exchange, Freshness::Now).await
    {
        publication = Publication::new(fresh.value.exported_until(), &days, Timestamp::now());
    }
    if let Some(wait) = settings.wait
        && !publication.incomplete.is_empty()
        && !publication.assumed
    {
        publication = publication::wait_for_export(meta, &request.exchange, &days, wait).await;
    }
    Ok(publication)
}

/// The exchange's details, once the request checks out against them. A request that fails
/// against a cached copy is checked again against a fresh one (a symbol listed today).
async fn validated(
    request: &Request,
    meta: &Metadata,
) -> Result<crate::metadata::Doc<ExchangeDetails>, PreflightError> {
    let details = match meta.exchange(&request.exchange, Freshness::Cached).await {
        Ok(d) => d,
        Err(MetadataError::UnknownExchange { id }) => return Err(unknown_exchange(&id, meta).await),
        Err(e) => return Err(PreflightError::Metadata(e)),
    };
    match check_request(request, &details.value) {
        Ok(()) => Ok(details),
        Err(_) if details.cached && !meta.offline() => {
            let fresh = meta
                .exchange(&request.exchange, Freshness::Now)
                .await
                .map_err(PreflightError::Metadata)?;
            check_request(request, &fresh.value)?;
            Ok(fresh)
        }
        Err(e) => Err(e.into()),
    }
}

/// The error for an exchange the API does not know, with the closest known ids.
pub(crate) async fn unknown_exchange(id: &str, meta: &Metadata) -> PreflightError {
    let list = match meta.exchanges(Freshness::Cached).await {
        Ok(list) => list,
        // The list cannot be read either: the API itself is the problem, not the id.
        Err(e) => return PreflightError::Metadata(e),
    };
    let ids = list.value.iter().filter(|e| e.has_datasets()).map(|e| e.id.as_str());
    let hint = did_you_mean(&closest(id, ids));
    UsageError(format!(
        "unknown exchange '{id}'{hint}; `tickvault exchanges` lists them"
    ))
    .into()
}

/// Refuses a range reaching a day that has not begun.
fn check_not_future(request: &Request, now: Timestamp) -> Result<(), UsageError> {
    if let Some(day) = request.range.days().into_iter().find(|d| day_start(*d) > now) {
        return Err(UsageError(format!(
            "the range reaches {day}, which has not begun yet (it is now {}): Tardis has no data for it",
            now.strftime("%Y-%m-%dT%H:%M:%SZ")
        )));
    }
    Ok(())
}

/// Checks symbols, data types and dates against an exchange's details.
///
/// # Errors
/// One line naming every value at fault, with suggestions.
pub(crate) fn check_request(request: &Request, details: &ExchangeDetails) -> Result<(), UsageError> {
    let ex = &request.exchange;
    if details.symbols().is_empty() {
        return Err(UsageError(format!(
            "exchange '{ex}' has no downloadable datasets in Tardis's metadata"
        )));
    }
    let mut unknown = Vec::new();
    let mut known = Vec::new();
    for s in &request.symbols {
        match details.symbol(s) {
            Some(meta) => known.push((s, meta)),
            None => {
                let ids = details.symbols().iter().map(|m| m.id.as_str());
                unknown.push(format!("'{s}'{}", did_you_mean(&closest(s, ids))));
            }
        }
    }
    if !unknown.is_empty() {
        let what = if unknown.len() == 1 { "symbol" } else { "symbols" };
        return Err(UsageError(format!(
            "unknown {what} {} on {ex}; `tickvault exchanges {ex}` lists its symbols",
            unknown.join(", ")
        )));
    }
    let mut faults = Vec::new();
    for (s, meta) in &known {
        let missing: Vec<&str> = request
            .data_types
            .iter()
            .map(|t| t.as_str())
            .filter(|t| !meta.data_types.iter().any(|have| have == t))
            .collect();
        if !missing.is_empty() {
            faults.push(format!(
                "{s} on {ex} has no {} data (it has {})",
                missing.join(", "),
                if meta.data_types.is_empty() {
                    "none".to_string()
                } else {
                    meta.data_types.join(", ")
                }
            ));
        }
    }
    if faults.is_empty() {
        faults.extend(known.iter().filter_map(|(s, meta)| out_of_range(s, ex, meta, request)));
    }
    if faults.is_empty() {
        Ok(())
    } else {
        Err(UsageError(faults.join("; ")))
    }
}

/// Why the range asks for days outside the symbol's `availableSince`/`availableTo`, if it does.
fn out_of_range(symbol: &str, ex: &str, meta: &DatasetSymbol, request: &Request) -> Option<String> {
    let days = request.range.days();
    let (first, last) = (*days.first()?, *days.last()?);
    let day_end = |d: Date| day_start(d) + SignedDuration::from_hours(24);
    let utc_day = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date();
    if let Some(since) = meta.available_since
        && day_end(first) <= since
    {
        return Some(format!(
            "{symbol} on {ex} has data from {} (availableSince {}); the range starts {first}",
            utc_day(since),
            iso(since)
        ));
    }
    if let Some(to) = meta.available_to
        && day_start(last) >= to
    {
        let last_day = utc_day(to - SignedDuration::from_micros(1));
        return Some(format!(
            "{symbol} on {ex} has data until {last_day} (availableTo {}); the range ends {last}",
            iso(to)
        ));
    }
    None
}

/// An instant as the API writes it, to the second.
pub(crate) fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DataType, TimeRange, parse_instant};

    fn details() -> ExchangeDetails {
        serde_json::from_str(
            r#"{"id":"binance-futures","datasets":{"exportedUntil":"2024-03-03T00:00:00.000Z","symbols":[
            {"id":"BTCUSDT","type":"perpetual","availableSince":"2019-09-08T00:00:00.000Z","dataTypes":["trades","quotes"]},
            {"id":"BTCUSDT_210326","type":"future","availableSince":"2020-12-25T00:00:00.000Z",
             "availableTo":"2021-03-26T08:00:00.000Z","dataTypes":["trades"]},
            {"id":"PERPETUALS","type":"perpetual","availableSince":"2020-01-01T00:00:00.000Z","dataTypes":["trades"]}]}}"#,
        )
        .unwrap()
    }

    fn request(symbols: &[&str], types: &[DataType], from: &str, to: &str) -> Request {
        Request {
            exchange: "binance-futures".into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            data_types: types.to_vec(),
            range: TimeRange::new(
                parse_instant("--from", from).unwrap(),
                Some(parse_instant("--to", to).unwrap()),
            )
            .unwrap(),
        }
    }

    fn err(r: &Request) -> String {
        check_request(r, &details()).unwrap_err().0
    }

    #[test]
    fn good_requests_pass_grouped_symbols_included() {
        let r = request(
            &["BTCUSDT", "PERPETUALS"],
            &[DataType::Trades],
            "2024-03-01",
            "2024-03-03",
        );
        check_request(&r, &details()).unwrap();
        // availableTo mid-day: that day still has data.
        let r = request(&["BTCUSDT_210326"], &[DataType::Trades], "2021-03-26", "2021-03-27");
        check_request(&r, &details()).unwrap();
    }

    #[test]
    fn unknown_symbols_get_suggestions() {
        let e = err(&request(&["BTCUSD"], &[DataType::Trades], "2024-03-01", "2024-03-02"));
        assert_eq!(
            e,
            "unknown symbol 'BTCUSD' (did you mean BTCUSDT, BTCUSDT_210326?) on binance-futures; \
             `tickvault exchanges binance-futures` lists its symbols"
        );
        let e = err(&request(
            &["BTCUSDT", "XRPJPY", "PERPETUAL"],
            &[DataType::Trades],
            "2024-03-01",
            "2024-03-02",
        ));
        assert!(
            e.starts_with("unknown symbols 'XRPJPY', 'PERPETUAL' (did you mean PERPETUALS?) on"),
            "{e}"
        );
    }

    #[test]
    fn missing_data_types_and_dates_are_named() {
        let e = err(&request(
            &["BTCUSDT"],
            &[DataType::Trades, DataType::OptionsChain],
            "2024-03-01",
            "2024-03-02",
        ));
        assert_eq!(
            e,
            "BTCUSDT on binance-futures has no options_chain data (it has trades, quotes)"
        );
        let e = err(&request(&["BTCUSDT"], &[DataType::Trades], "2019-09-01", "2019-09-10"));
        assert_eq!(
            e,
            "BTCUSDT on binance-futures has data from 2019-09-08 (availableSince 2019-09-08T00:00:00Z); the range starts 2019-09-01"
        );
        let e = err(&request(
            &["BTCUSDT_210326"],
            &[DataType::Trades],
            "2021-03-20",
            "2021-03-28",
        ));
        assert_eq!(
            e,
            "BTCUSDT_210326 on binance-futures has data until 2021-03-26 (availableTo 2021-03-26T08:00:00Z); the range ends 2021-03-27"
        );
    }

    #[test]
    fn days_that_have_not_begun_are_refused() {
        let r = request(&["BTCUSDT"], &[DataType::Trades], "2024-03-01", "2024-03-04");
        let now: Timestamp = "2024-03-02T12:00:00Z".parse().unwrap();
        let e = check_not_future(&r, now).unwrap_err().0;
        assert!(
            e.starts_with("the range reaches 2024-03-03, which has not begun yet"),
            "{e}"
        );
        let now: Timestamp = "2024-03-03T00:00:01Z".parse().unwrap();
        check_not_future(&r, now).unwrap();
    }
}
