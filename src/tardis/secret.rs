//! Secrets (the API key, the remote token) and URLs as they may be shown: a [`Secret`] never
//! prints itself, and [`redact_url`] strips user-info, query and fragment.

use std::fmt;

use url::Url;

/// A secret (API key or token): never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value; empty or blank values mean "no secret".
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let v = value.into().trim().to_string();
        (!v.is_empty()).then_some(Self(v))
    }
    /// The secret itself, for building a header. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A URL as it may be shown to a user: no user-info, no query string, no fragment (either
/// may carry credentials).
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// A raw URL for an error message, when it may not even parse: anything between `//` and `@`
/// is hidden, and the query string dropped.
pub fn redact_raw(raw: &str) -> String {
    match (raw.find("//"), raw.find('@')) {
        (Some(s), Some(a)) if a > s => format!("{}***{}", &raw[..s + 2], &raw[a..]),
        _ => raw.split('?').next().unwrap_or(raw).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-abc").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(Secret::new("  ").is_none());
    }

    #[test]
    fn urls_lose_credentials_when_shown() {
        let u: Url = "https://user:pw@datasets.example/v1/x.csv.gz?token=t#f"
            .parse()
            .unwrap();
        assert_eq!(redact_url(&u), "https://datasets.example/v1/x.csv.gz");
        assert_eq!(redact_raw("ftp://user:secret@host/x"), "ftp://***@host/x");
        assert_eq!(redact_raw("http://h/x?token=t"), "http://h/x");
    }
}
