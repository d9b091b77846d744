//! The header line: checked against the one Tardis documents for the data type, so a changed
//! file format is an error naming the columns, never a silent misparse.

use super::DecodeError;
use crate::model::DataType;

/// Checks a header line (with or without its line end).
pub(super) fn check(data_type: DataType, file: &str, line: &[u8]) -> Result<(), DecodeError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_start_matches('\u{feff}').trim_end_matches(['\n', '\r']);
    let expected = data_type.header();
    if text == expected {
        return Ok(());
    }
    let found: Vec<&str> = text.split(',').collect();
    let want: Vec<&str> = expected.split(',').collect();
    let mut parts = Vec::new();
    let missing: Vec<&str> = want.iter().filter(|c| !found.contains(c)).copied().collect();
    let extra: Vec<&str> = found.iter().filter(|c| !want.contains(c)).copied().collect();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(&missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected {}", list(&extra)));
    }
    if missing.is_empty() && extra.is_empty() {
        if let Some(i) = want.iter().zip(&found).position(|(a, b)| a != b) {
            parts.push(format!(
                "column {} is '{}' where '{}' was expected (columns out of order)",
                i + 1,
                found[i],
                want[i]
            ));
        } else {
            parts.push(format!("{} columns where {} were expected", found.len(), want.len()));
        }
    }
    Err(DecodeError::Header {
        file: file.to_string(),
        data_type,
        detail: parts.join("; "),
    })
}

fn list(cols: &[&str]) -> String {
    const SHOWN: usize = 6;
    let mut s = cols
        .iter()
        .take(SHOWN)
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if cols.len() > SHOWN {
        s.push_str(&format!(" and {} more", cols.len() - SHOWN));
    }
    s
}
