//! The plan of a download: the chunks of a request, in the order they are requested and in
//! the order each output takes them.

use std::collections::HashSet;

use crate::model::{ChunkKey, DataType, TimeRange};

/// What a download asks for: exchange × symbols × data types × range.
#[derive(Debug, Clone)]
pub struct Request {
    /// The Tardis exchange id.
    pub exchange: String,
    /// Normalised dataset symbols, in the order given, without duplicates.
    pub symbols: Vec<String>,
    /// Data types, in the order given, without duplicates.
    pub data_types: Vec<DataType>,
    /// `[from, to)`.
    pub range: TimeRange,
}

/// The chunks of a run. For each data type and symbol the last day, then the first day are
/// the "probes" (answered before the rest are fetched, as the official clients do), then the
/// days in between.
#[derive(Debug, Clone)]
pub struct Plan {
    /// (key, is_probe), in request order.
    pub requests: Vec<(ChunkKey, bool)>,
    /// Per data type, the chunks in output tie-break order (day, then symbol as given),
    /// withheld ones included.
    pub per_type: Vec<(DataType, Vec<ChunkKey>)>,
    /// Chunks not requested because their day is not published yet (see [`Self::withhold`]).
    pub withheld: HashSet<ChunkKey>,
}

impl Plan {
    /// Plans a request.
    pub fn new(request: &Request) -> Self {
        let days = request.range.days();
        let exchange = request.exchange.as_str();
        let mut probes = Vec::new();
        let mut rest = Vec::new();
        let mut per_type = Vec::new();
        for &t in &request.data_types {
            let key = |s: &String, d| ChunkKey::new(exchange, t, s.as_str(), d);
            per_type.push((
                t,
                days.iter()
                    .flat_map(|d| request.symbols.iter().map(|s| key(s, *d)))
                    .collect(),
            ));
            for s in &request.symbols {
                let (first, last) = (days[0], days[days.len() - 1]);
                probes.push(key(s, last));
                if first != last {
                    probes.push(key(s, first));
                }
                if days.len() > 2 {
                    rest.extend(days[1..days.len() - 1].iter().map(|d| key(s, *d)));
                }
            }
        }
        let requests = probes
            .into_iter()
            .map(|k| (k, true))
            .chain(rest.into_iter().map(|k| (k, false)))
            .collect();
        Self {
            requests,
            per_type,
            withheld: HashSet::new(),
        }
    }

    /// Takes the chunks for which `unpublished` is true out of the requests.
    #[must_use]
    pub fn withhold(mut self, unpublished: impl Fn(&ChunkKey) -> bool) -> Self {
        let (out, keep): (Vec<_>, Vec<_>) = self.requests.into_iter().partition(|(k, _)| unpublished(k));
        self.requests = keep;
        self.withheld = out.into_iter().map(|(k, _)| k).collect();
        self
    }

    /// Whether `key` was withheld.
    pub fn is_withheld(&self, key: &ChunkKey) -> bool {
        self.withheld.contains(key)
    }

    /// The probe chunks.
    pub fn probes(&self) -> impl Iterator<Item = &ChunkKey> {
        self.requests.iter().filter(|(_, p)| *p).map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_instant;

    fn request(symbols: &[&str], data_types: &[DataType], from: &str, to: Option<&str>) -> Request {
        Request {
            exchange: "x".into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            data_types: data_types.to_vec(),
            range: TimeRange::new(
                parse_instant("--from", from).unwrap(),
                to.map(|t| parse_instant("--to", t).unwrap()),
            )
            .unwrap(),
        }
    }

    #[test]
    fn probes_come_first_last_day_before_first() {
        let plan = Plan::new(&request(
            &["A", "B"],
            &[DataType::Trades],
            "2024-01-01",
            Some("2024-01-05"),
        ));
        let order: Vec<String> = plan
            .requests
            .iter()
            .map(|(k, p)| format!("{}{}{}", k.symbol, k.date.day(), if *p { "*" } else { "" }))
            .collect();
        assert_eq!(order, vec!["A4*", "A1*", "B4*", "B1*", "A2", "A3", "B2", "B3"]);
        let tie: Vec<String> = plan.per_type[0]
            .1
            .iter()
            .map(|k| format!("{}{}", k.symbol, k.date.day()))
            .collect();
        assert_eq!(tie, vec!["A1", "B1", "A2", "B2", "A3", "B3", "A4", "B4"]);
        assert_eq!(plan.probes().count(), 4);
    }

    #[test]
    fn unpublished_days_are_withheld_from_the_requests_only() {
        let plan = Plan::new(&request(&["A"], &[DataType::Trades], "2024-01-01", Some("2024-01-04")))
            .withhold(|k| k.date.day() >= 3);
        assert_eq!(plan.requests.len(), 2);
        assert_eq!(plan.withheld.len(), 1);
        assert!(plan.is_withheld(&plan.per_type[0].1[2]));
        assert_eq!(plan.per_type[0].1.len(), 3);
    }

    #[test]
    fn a_single_day_is_one_probe() {
        let plan = Plan::new(&request(
            &["A"],
            &[DataType::Trades, DataType::Quotes],
            "2024-01-01",
            None,
        ));
        assert_eq!(plan.requests.len(), 2);
        assert!(plan.requests.iter().all(|(_, p)| *p));
    }
}
