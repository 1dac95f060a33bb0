//! What a failed request to the API server means, decided in one place: not found, a conflict, busy for a
//! moment (ask again soon), failing (may pass later), unreachable, or refused for good; and the failure in
//! words a person can act on.

/// The kind of a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404: the object, its namespace or its type is not there.
    NotFound,
    /// 409: the object exists already, or changed meanwhile.
    Conflict,
    /// 429, 503, 504: throttled or unavailable for a moment (as right after a CRD is established).
    Busy,
    /// Any other 5xx: the server failed; may pass later.
    ServerError,
    /// 401, 403: this identity may not.
    Forbidden,
    /// The connection failed or timed out.
    Unreachable,
    /// Any other answer (400, 422, ...): final.
    Refused,
}

impl ErrorKind {
    /// The kind of `error`.
    pub fn of(error: &kube::Error) -> ErrorKind {
        match error {
            kube::Error::Api(status) => match status.code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                429 | 503 | 504 => ErrorKind::Busy,
                401 | 403 => ErrorKind::Forbidden,
                500..=599 => ErrorKind::ServerError,
                _ => ErrorKind::Refused,
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => ErrorKind::Unreachable,
            _ => ErrorKind::Refused,
        }
    }

    /// Whether the same request may pass if sent again later.
    pub fn may_pass_later(self) -> bool {
        matches!(self, ErrorKind::Busy | ErrorKind::ServerError | ErrorKind::Unreachable)
    }
}

/// Whether `error` is a 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    ErrorKind::of(error) == ErrorKind::NotFound
}

/// Whether `error` is a 409.
pub fn is_conflict(error: &kube::Error) -> bool {
    ErrorKind::of(error) == ErrorKind::Conflict
}

/// A failed request in words: the API server's message and HTTP code, or for a connection that failed,
/// each cause in the chain once (`client error (Connect): tcp connect error: Connection refused`).
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => format!("{} (HTTP {})", status.message, status.code),
        other => crate::cause::chain_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("answer", "Reason").with_code(code).boxed())
    }

    #[test]
    fn throttling_and_server_errors_may_pass_but_client_errors_do_not() {
        for code in [429, 500, 503, 504] {
            assert!(ErrorKind::of(&answered(code)).may_pass_later(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422] {
            assert!(!ErrorKind::of(&answered(code)).may_pass_later(), "{code}");
        }
        assert_eq!(ErrorKind::of(&answered(503)), ErrorKind::Busy);
        assert!(is_not_found(&answered(404)) && is_conflict(&answered(409)));
    }

    #[test]
    fn an_answer_is_described_by_its_message_and_code() {
        assert_eq!(describe(&answered(403)), "answer (HTTP 403)");
    }
}
