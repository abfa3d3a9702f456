//! `incremental.windows`: an incremental stream's range (from the saved cursor or `start`
//! to `end` or now) split into windows of a declared length, each fetched as its own pass
//! with `incremental.start`/`incremental.end` of that window, several at once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// Date windows of an incremental stream.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateWindows {
    /// Length of each window, e.g. `1d` or `7d` (a `month` is 30.44 days); the last
    /// window ends at `incremental.end`, or at the time the run started.
    pub size: Duration,
    /// Windows fetched at once, all under the connector's one rate limit.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: u32,
}

/// Windows in flight unless the spec says otherwise.
fn default_concurrency() -> u32 {
    DateWindows::DEFAULT_CONCURRENCY
}

impl DateWindows {
    /// The default of `concurrency`.
    pub const DEFAULT_CONCURRENCY: u32 = 4;
    /// At most this many windows in one run: more means the window is far too small
    /// for the range (or `start` is far too early), and the run would be all requests.
    pub const MAX_WINDOWS: usize = 100_000;
}
