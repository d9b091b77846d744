//! The grammars of option values, one per kind, used by flags, environment variables and the
//! config file alike: durations and ages (`500ms`, `10s`, `1h30m`, `30d`, `2w`), sizes
//! (`512MiB`, `2GB`), URLs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{Span, SpanRelativeTo};
use url::Url;

use crate::tardis::redact_raw;

/// Parses a duration in jiff's friendly format (`500ms`, `10s`, `2m`, `1h30m`, `1d`, `2w`,
/// `1 day 2 hours`); days and weeks are 24 hours and 7 days.
///
/// # Errors
/// A message saying what was expected.
pub(crate) fn duration(raw: &str) -> Result<Duration, String> {
    let bad = || format!("'{raw}' is not a duration such as 500ms, 10s, 1h30m or 30d");
    let span: Span = raw.trim().parse().map_err(|_| bad())?;
    let d = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad())?;
    Duration::try_from(d).map_err(|_| format!("'{raw}' is negative"))
}

/// A duration in the grammar [`duration`] reads (`1h 30m`, `500ms`).
pub(crate) fn show_duration(d: Duration) -> String {
    match jiff::SignedDuration::try_from(d) {
        Ok(s) => format!("{s:#}"),
        Err(_) => format!("{}s", d.as_secs()),
    }
}

/// A size in the grammar [`size`] reads, in the largest binary unit that divides it.
pub(crate) fn show_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Parses a size: bytes, or a number with KB/MB/GB/TB (×1000) or K/M/G/T, KiB/MiB/GiB/TiB (×1024).
///
/// # Errors
/// A message saying what was expected.
pub(crate) fn size(raw: &str) -> Result<u64, String> {
    let s = raw.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{raw}' is not a size such as 512MiB or 2GB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{raw}' (use B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    Ok((value * mult as f64) as u64)
}

/// An `http(s)://` URL (the Tardis APIs).
///
/// # Errors
/// A message naming `flag` and the URL without credentials.
pub(crate) fn http_url(flag: &str, raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("invalid {flag} '{}': {e}", redact_raw(raw)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid {flag} '{}': expected an http or https URL",
            redact_raw(raw)
        ));
    }
    Ok(url)
}

/// A remote cache URL: `file://` paths (absolute), or any URL (its scheme is checked by the
/// remote tier).
///
/// # Errors
/// A message naming the URL without credentials.
pub(crate) fn remote_url(raw: &str) -> Result<Url, String> {
    let bad = |why: String| format!("invalid --remote-cache '{}': {why}", redact_raw(raw));
    if let Some(path) = raw.strip_prefix("file://") {
        return Url::from_directory_path(path).map_err(|()| bad("file:// needs an absolute path".into()));
    }
    Url::parse(raw).map_err(|e| bad(e.to_string()))
}

/// `~/x` → `$HOME/x`.
pub(crate) fn expand_home(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => dirs::home_dir().map_or_else(|| p.to_path_buf(), |h| h.join(rest)),
        Err(_) => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(size("512MiB").unwrap(), 512 << 20);
        assert_eq!(size("512M").unwrap(), 512 << 20);
        assert_eq!(size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(size("0").unwrap(), 0);
        assert!(size("lots").is_err());
        assert!(size("5XB").is_err());
    }

    #[test]
    fn one_duration_grammar_from_milliseconds_to_weeks() {
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(duration("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(duration("1 day 2 hours").unwrap(), Duration::from_secs(93_600));
        for bad in ["d", "3 dayz", "", "-5s", "ten seconds"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shown_values_read_back() {
        for d in ["500ms", "10s", "1h 30m", "30d"] {
            let v = duration(d).unwrap();
            assert_eq!(duration(&show_duration(v)).unwrap(), v, "{d}");
        }
        assert_eq!(show_duration(Duration::from_secs(90)), "1m 30s");
        for s in ["512MiB", "2GB", "1000", "3KiB"] {
            let v = size(s).unwrap();
            assert_eq!(size(&show_size(v)).unwrap(), v, "{s}");
        }
        assert_eq!(show_size(128 << 20), "128MiB");
    }

    #[test]
    fn credentials_in_urls_are_hidden_in_errors() {
        let e = remote_url("ftp//user:secret@host/x").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = http_url("--datasets-url", "ftp://u:secret@h").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }
}
