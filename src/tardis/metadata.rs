//! The exchanges metadata API: `GET /v1/exchanges` (the list) and `GET /v1/exchanges/{id}`
//! (one exchange: its dataset symbols, their data types and dates, `datasets.exportedUntil`).
//! Shapes follow tardis-node `src/exchangedetails.ts`; fields this crate does not use are
//! ignored, and every field that the API may leave out is optional. Neither request carries
//! the API key (tardis-python's `get_exchange_details` sends none).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One item of `GET /v1/exchanges`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeSummary {
    /// The exchange id (`binance-futures`).
    pub id: String,
    /// Display name (`Binance USDT Futures`).
    #[serde(default)]
    pub name: String,
    /// Whether Tardis still collects it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether downloadable CSV datasets exist (absent: assumed).
    #[serde(default)]
    pub supports_datasets: Option<bool>,
    /// First data.
    #[serde(default)]
    pub available_since: Option<Timestamp>,
    /// End of the data of a delisted exchange.
    #[serde(default)]
    pub available_to: Option<Timestamp>,
}

fn yes() -> bool {
    true
}

impl ExchangeSummary {
    /// Whether the exchange has downloadable datasets.
    pub fn has_datasets(&self) -> bool {
        self.supports_datasets != Some(false)
    }
}

/// `GET /v1/exchanges/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeDetails {
    /// The exchange id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Whether Tardis still collects it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether the exchange is delisted.
    #[serde(default)]
    pub delisted: bool,
    /// First data.
    #[serde(default)]
    pub available_since: Option<Timestamp>,
    /// End of the data of a delisted exchange.
    #[serde(default)]
    pub available_to: Option<Timestamp>,
    /// The downloadable datasets; absent for an exchange without them.
    #[serde(default)]
    pub datasets: Option<Datasets>,
}

/// `datasets` of an exchange's details.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Datasets {
    /// First exported instant.
    #[serde(default)]
    pub exported_from: Option<Timestamp>,
    /// Data before this instant is exported and final ("poll `datasets.exportedUntil`, not
    /// the wall clock", docs.tardis.dev/downloadable-csv-files/api).
    #[serde(default)]
    pub exported_until: Option<Timestamp>,
    /// The dataset symbols, grouped ones (`PERPETUALS`, …) included.
    #[serde(default)]
    pub symbols: Vec<DatasetSymbol>,
}

/// One entry of `datasets.symbols`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSymbol {
    /// The dataset symbol id, as in dataset URLs (`BTCUSDT`, `BTC-PERPETUAL`, `OPTIONS`).
    pub id: String,
    /// `spot`, `future`, `perpetual`, `option`, `combo`, `prediction`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// First day with data.
    #[serde(default)]
    pub available_since: Option<Timestamp>,
    /// End of the data (exclusive) of a symbol that is no longer listed.
    #[serde(default)]
    pub available_to: Option<Timestamp>,
    /// The dataset types it has (as Tardis names them).
    #[serde(default)]
    pub data_types: Vec<String>,
}

impl ExchangeDetails {
    /// `datasets.exportedUntil`, if the document has it.
    pub fn exported_until(&self) -> Option<Timestamp> {
        self.datasets.as_ref().and_then(|d| d.exported_until)
    }

    /// The dataset symbols (empty without datasets).
    pub fn symbols(&self) -> &[DatasetSymbol] {
        self.datasets.as_ref().map_or(&[], |d| d.symbols.as_slice())
    }

    /// The dataset symbol `id`, if the exchange has it.
    pub fn symbol(&self, id: &str) -> Option<&DatasetSymbol> {
        self.symbols().iter().find(|s| s.id == id)
    }

    /// Every data type any symbol has, in Tardis's order (unknown names last, sorted).
    pub fn data_types(&self) -> Vec<String> {
        let mut all: Vec<&str> = self
            .symbols()
            .iter()
            .flat_map(|s| s.data_types.iter().map(String::as_str))
            .collect();
        all.sort_by_key(|t| {
            let rank = crate::model::DataType::ALL
                .iter()
                .position(|d| d.as_str() == *t)
                .unwrap_or(usize::MAX);
            (rank, *t)
        });
        all.dedup();
        all.into_iter().map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_parse_with_optional_and_unknown_fields() {
        let doc = r#"{"id":"deribit","name":"Deribit","enabled":true,"availableSince":"2019-03-30T00:00:00.000Z",
            "availableChannels":["trades"],"incidentReports":[],
            "datasets":{"formats":["csv"],"exportedFrom":"2019-03-30T00:00:00.000Z",
              "exportedUntil":"2024-03-05T00:00:00.000Z","stats":{"trades":1,"bookChanges":2},
              "symbols":[{"id":"BTC-PERPETUAL","type":"perpetual","availableSince":"2019-03-30T00:00:00.000Z",
                          "dataTypes":["quotes","trades","something_new"]},
                         {"id":"BTC-29MAR19","type":"future","availableSince":"2018-12-28T00:00:00.000Z",
                          "availableTo":"2019-03-29T08:00:00.000Z","dataTypes":["trades"]}]}}"#;
        let d: ExchangeDetails = serde_json::from_str(doc).unwrap();
        assert_eq!(d.exported_until(), Some("2024-03-05T00:00:00Z".parse().unwrap()));
        assert_eq!(d.symbols().len(), 2);
        assert!(d.symbol("BTC-29MAR19").unwrap().available_to.is_some());
        assert_eq!(d.data_types(), ["trades", "quotes", "something_new"]);
        let bare: ExchangeDetails = serde_json::from_str(r#"{"id":"x"}"#).unwrap();
        assert!(bare.symbols().is_empty() && bare.exported_until().is_none());
        let list: Vec<ExchangeSummary> =
            serde_json::from_str(r#"[{"id":"a","name":"A","supportsDatasets":false},{"id":"b"}]"#).unwrap();
        assert!(!list[0].has_datasets() && list[1].has_datasets());
    }
}
