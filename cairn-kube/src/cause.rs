//! The text of an error with its causes, each said once. Errors from other crates often repeat their
//! cause in their own message *and* return it as their source, so printing the chain says it twice or
//! three times; this skips every cause whose text is already there.

use std::error::Error;

/// `error`'s message followed by each cause not already in the text: `a: b: c`.
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner failed")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let error = Repeats(Inner(std::io::Error::other("connection refused")));
        assert_eq!(chain_text(&error), "outer: inner failed: connection refused");
    }
}
