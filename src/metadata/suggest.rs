//! "Did you mean …?": the valid names closest to a wrong one, by edit distance (a typo:
//! `binance-future` → `binance-futures`) and by prefix (an incomplete name: `BTC` →
//! `BTC-PERPETUAL`, `BTCUSDT`). Case is ignored when comparing.

/// At most this many suggestions are given.
pub const MAX_SUGGESTIONS: usize = 5;

/// The candidates closest to `wanted`: first those within a small edit distance (nearest
/// first), then those that start with it (shortest first), at most [`MAX_SUGGESTIONS`].
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let w = wanted.to_lowercase();
    // A third of the name may be wrong, at least two characters, as clap's suggestions allow.
    let limit = (w.chars().count() / 3).max(2);
    let mut near: Vec<(usize, &str)> = Vec::new();
    let mut prefixed: Vec<&str> = Vec::new();
    for c in candidates {
        let lc = c.to_lowercase();
        if lc == w {
            continue;
        }
        let d = strsim::levenshtein(&w, &lc);
        if d <= limit {
            near.push((d, c));
        } else if !w.is_empty() && lc.starts_with(&w) {
            prefixed.push(c);
        }
    }
    near.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    prefixed.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    near.into_iter()
        .map(|(_, c)| c)
        .chain(prefixed)
        .take(MAX_SUGGESTIONS)
        .collect()
}

/// `" (did you mean a, b?)"`, or nothing when there is no suggestion.
pub fn did_you_mean(suggestions: &[&str]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_come_before_prefixes() {
        let ex = ["binance", "binance-futures", "binance-delivery", "bitmex", "deribit"];
        assert_eq!(closest("binance-future", ex), ["binance-futures"]);
        assert_eq!(closest("dervit", ex), ["deribit"]);
        let syms = ["BTCUSDT", "BTCUSD_PERP", "ETHUSDT", "BTCDOMUSDT", "BTCUSDT_240329"];
        assert_eq!(closest("BTCUSD", syms), ["BTCUSDT", "BTCUSD_PERP", "BTCUSDT_240329"]);
        assert_eq!(
            closest("btc", syms),
            ["BTCUSDT", "BTCDOMUSDT", "BTCUSD_PERP", "BTCUSDT_240329"]
        );
        assert!(closest("XRPJPY", syms).is_empty());
        assert_eq!(did_you_mean(&[]), "");
        assert_eq!(did_you_mean(&["a", "b"]), " (did you mean a, b?)");
    }

    #[test]
    fn at_most_five_and_never_the_name_itself() {
        let many: Vec<String> = (0..20).map(|i| format!("BTC{i:02}")).collect();
        let got = closest("BTC", many.iter().map(String::as_str));
        assert_eq!(got.len(), MAX_SUGGESTIONS);
        assert!(closest("BTCUSDT", ["btcusdt"]).is_empty());
    }
}
