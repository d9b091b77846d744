//! Rendering errors for people: an error's message followed by its causes, each once.

use std::error::Error;
use std::fmt::Write as _;

/// `error: cause: cause…`, the way `anyhow`'s `{:#}` prints a chain. Error types in this crate
/// keep their cause out of their own message, so each part appears once.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        // Some library errors repeat their source in their own message: print it once.
        if !text.contains(&part) {
            let _ = write!(text, ": {part}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_message_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
    }
}
