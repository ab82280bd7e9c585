//! The bootstrap operator key, read once at start-up from the Secrets Manager secret named by
//! `BOOTSTRAP_OPERATOR_KEY_SECRET` (the API and the usage stream). It is hashed at once
//! ([`crate::services::authenticate::bootstrap_record`]) and never written anywhere; its value is never logged or echoed
//! in an error. Rotating it: docs/security.md.

use super::CallRecorder;
use crate::domain::access::keys::PresentedKey;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;

/// Why the bootstrap key could not be read (the function stops at start-up).
#[derive(Debug, thiserror::Error)]
pub enum BootstrapKeyError {
    #[error("BOOTSTRAP_OPERATOR_KEY_SECRET: secret {secret} could not be read: {reason}")]
    Unreadable { secret: String, reason: String },
    #[error(
        "BOOTSTRAP_OPERATOR_KEY_SECRET: secret {0} does not hold an API key (ml_<16 of a-z 2-7>_<48 of a-z 2-7>)"
    )]
    Malformed(String),
}

/// The key in secret `secret_id` (its ARN or name): the secret's string value, trimmed.
pub async fn read_bootstrap_key(client: &Client, secret_id: &str) -> Result<PresentedKey, BootstrapKeyError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| BootstrapKeyError::Unreadable {
            secret: secret_id.to_string(),
            reason: DisplayErrorContext(&e).to_string(),
        })?;
    out.secret_string()
        .and_then(|s| s.trim().parse::<PresentedKey>().ok())
        .ok_or_else(|| BootstrapKeyError::Malformed(secret_id.to_string()))
}

/// The bootstrap key of a function's configuration: none when no secret is named. The read is
/// recorded with the function's other calls when `recorder` is given (`AwsClients::recorder`).
pub async fn bootstrap_key(
    sdk: &aws_config::SdkConfig,
    recorder: Option<&CallRecorder>,
    secret_id: Option<&str>,
) -> Result<Option<PresentedKey>, BootstrapKeyError> {
    let Some(id) = secret_id else {
        return Ok(None);
    };
    let mut conf = aws_sdk_secretsmanager::config::Builder::from(sdk);
    if let Some(r) = recorder {
        conf = conf.interceptor(r.clone());
    }
    read_bootstrap_key(&Client::from_conf(conf.build()), id)
        .await
        .map(Some)
}
