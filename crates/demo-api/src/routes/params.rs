//! Query-string parsing with error messages that name the parameter and the accepted values.

use time::OffsetDateTime;

use crate::data::parse_ts;
use crate::error::ApiError;

/// Decoded query parameters, in order.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An integer in `min..=max`, `default` when absent.
    pub(crate) fn int(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "query parameter `{name}` must be an integer from {min} to {max}, got `{v}`"
                    ))
                }),
        }
    }

    /// An RFC 3339 timestamp. A space where a `+` was meant (an unencoded `+00:00`) is forgiven.
    pub(crate) fn timestamp(&self, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        parse_ts(v)
            .or_else(|e| parse_ts(&v.replace(' ', "+")).map_err(|_| e))
            .map(Some)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "query parameter `{name}` must be an RFC 3339 timestamp such as 2024-01-01T00:00:00Z, got `{v}` ({e})"
                ))
            })
    }
}
