//! Why a SAML login was refused, in words a person can act on. Each kind has its own page and
//! audit reason; none of them carries the assertion or its attribute values.

use samael::service_provider::Error as SamaelError;

#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    #[error("the identity provider's signature on the login answer is missing or not valid")]
    BadSignature,
    #[error("the login answer has expired")]
    Expired(String),
    #[error(
        "the login answer is not valid yet: this server's clock and the identity provider's disagree"
    )]
    ClockSkew(String),
    #[error("the login answer is meant for another service (wrong audience)")]
    WrongAudience(String),
    #[error("the login answer was sent to another address (wrong recipient or destination)")]
    WrongRecipient(String),
    #[error("the login answer was already used")]
    Replayed,
    #[error("the login answer does not answer a login started here")]
    Unsolicited,
    #[error("the login took too long, was already used, or was started in another browser")]
    NoPendingLogin,
    #[error("the login was started in another browser")]
    OtherBrowser,
    #[error("the identity provider refused the login")]
    Refused(String),
    #[error("the login answer could not be read")]
    Malformed(String),
    #[error("the identity provider is unavailable")]
    Unavailable(String),
    #[error("the login is misconfigured")]
    Config(String),
    /// Where logins in progress are kept cannot be reached (or is flooded).
    #[error("logins are paused: {0}")]
    Store(String),
}

impl SamlError {
    /// What the log should say, which may be more than the user is told. Never the assertion.
    pub fn detail(&self) -> String {
        match self {
            SamlError::Expired(d)
            | SamlError::ClockSkew(d)
            | SamlError::WrongAudience(d)
            | SamlError::WrongRecipient(d)
            | SamlError::Refused(d)
            | SamlError::Malformed(d)
            | SamlError::Unavailable(d)
            | SamlError::Config(d) => format!("{self}: {d}"),
            _ => self.to_string(),
        }
    }

    /// A short stable name for audit events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SamlError::BadSignature => "bad_signature",
            SamlError::Expired(_) => "expired",
            SamlError::ClockSkew(_) => "clock_skew",
            SamlError::WrongAudience(_) => "wrong_audience",
            SamlError::WrongRecipient(_) => "wrong_recipient",
            SamlError::Replayed => "replayed",
            SamlError::Unsolicited => "unsolicited",
            SamlError::NoPendingLogin => "no_pending_login",
            SamlError::OtherBrowser => "other_browser",
            SamlError::Refused(_) => "refused",
            SamlError::Malformed(_) => "malformed",
            SamlError::Unavailable(_) => "unavailable",
            SamlError::Config(_) => "config",
            SamlError::Store(_) => "store",
        }
    }
}

/// samael's verdicts sorted into the kinds above. Its messages name times and URLs, never
/// attribute values, so they may go to the log.
pub(super) fn from_samael(e: SamaelError) -> SamlError {
    use SamaelError as E;
    let text = e.to_string();
    match e {
        E::FailedToValidateSignature | E::CryptoXmlError(_) | E::FailedToParseCert { .. } => {
            SamlError::BadSignature
        }
        E::AssertionExpired { .. }
        | E::ResponseExpired { .. }
        | E::AssertionConditionExpired { .. }
        | E::AssertionSubjectConfirmationExpired { .. } => SamlError::Expired(text),
        E::AssertionConditionExpiredBefore { .. }
        | E::AssertionSubjectConfirmationExpiredBefore { .. } => SamlError::ClockSkew(text),
        E::AssertionConditionAudienceRestrictionFailed { .. } => SamlError::WrongAudience(text),
        E::AssertionRecipientMismatch { .. } | E::DestinationValidationError { .. } => {
            SamlError::WrongRecipient(text)
        }
        E::AssertionInResponseToInvalid { .. } | E::ResponseInResponseToInvalid { .. } => {
            SamlError::Unsolicited
        }
        E::ResponseBadStatusCode { code } => SamlError::Refused(code),
        E::AssertionIssuerMismatch { .. } | E::ResponseIssuerMismatch { .. } => {
            SamlError::Malformed(text)
        }
        E::MissingPrivateKeySP => SamlError::Config(
            "the assertion is encrypted, but proxy.saml has no keystore or private key to \
             decrypt it"
                .into(),
        ),
        _ => SamlError::Malformed(text),
    }
}
