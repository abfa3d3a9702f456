//! The types of the connector format, `version: 1`.
//!
//! serde reads them, schemars derives `schemas/connector.schema.json` from them, and
//! the doc comments become the schema's descriptions (and so the editor's hover text).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::Duration;
use crate::jsonpath::JsonPath;
use crate::page_param::PageParam;
use crate::template::Template;

/// A connector: one source API, its streams, webhooks and push targets.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Connector spec")]
pub struct Spec {
    /// Version of the format; only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Name of the connector: lowercase letters, digits and `_`, starting with a letter, at
    /// most 64 characters. Names the output folder.
    #[schemars(regex(pattern = crate::names::NAME_PATTERN))]
    pub name: String,
    /// What the API is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Values a user supplies: from `--set`, `--config`, environment variables or defaults.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: IndexMap<String, ConfigDecl>,
    /// How to talk to the API: base URL, auth, headers, rate limits, retries.
    pub http: Http,
    /// The collections of records to pull, by name (the name of the output file; the same
    /// rule as the connector's name).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": crate::names::NAME_PATTERN }))]
    pub streams: IndexMap<String, Stream>,
    /// Signed webhooks the API sends, served by `runtime serve`, by name (the same rule
    /// as the connector's name).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": crate::names::NAME_PATTERN }))]
    pub webhooks: IndexMap<String, Webhook>,
    /// Write endpoints that `runtime push` sends records to, by name (the same rule as the
    /// connector's name).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": crate::names::NAME_PATTERN }))]
    pub push: IndexMap<String, PushTarget>,
    /// Settings every stream inherits unless it sets its own (`transform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<crate::transform::Defaults>,
}

impl Spec {
    /// The transformations of a stream: its own `transform`, else `defaults.transform`.
    pub fn transform_of<'a>(&'a self, stream: &'a Stream) -> &'a [crate::transform::Step] {
        match &stream.transform {
            Some(steps) => steps,
            None => self.defaults.as_ref().map_or(&[], |d| &d.transform),
        }
    }
}

/// One configuration value the connector needs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigDecl {
    /// The value's type; `--set` strings are converted to it.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// What the value is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Used when no other source gives a value. A string default may be a template of
    /// functions only, e.g. `"{{ now() | shift(days=-30) }}"` (evaluated at each run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Whether a value must be given; defaults to true when there is no default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// A secret never appears in logs, errors, output or state.
    #[serde(default)]
    pub secret: bool,
    /// Environment variable that supplies the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: Option<String>,
}

impl ConfigDecl {
    /// Whether a missing value is an error.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.default.is_none())
    }
}

/// The type of a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigType {
    /// Any text.
    String,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// An RFC 3339 date-time such as `2024-01-01T00:00:00Z`.
    Datetime,
    /// A list, e.g. `["acme", "globex"]` (JSON from `--set` and the environment).
    Array,
    /// A mapping, e.g. `{"region": "eu"}` (JSON from `--set` and the environment).
    Object,
}

/// How to talk to the API.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Base URL every stream path is joined to.
    pub base_url: Template,
    /// Headers sent with every request.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// Query parameters sent with every request.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, Template>,
    /// Time limit of one request, e.g. `30s`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// How requests are authenticated.
    #[serde(default)]
    pub auth: Auth,
    /// The API's rate-limit signals and a client-side ceiling.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Which failures are retried, and how long to back off.
    #[serde(default)]
    pub retry: Retry,
    /// Other origins treated as the API's own, e.g. `https://files.example.com`: next pages may go there and carry the credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_origins: Vec<String>,
    /// Largest response body accepted, in bytes after decompression; a larger one fails the request.
    #[serde(default = "default_max_response")]
    #[schemars(range(min = 1))]
    pub max_response_bytes: u64,
    /// Error rules for every stream, tried after the stream's own `errors`: what a
    /// response means beyond its status class (retry, skip, end or fail).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::error_rules::ErrorRule>,
}

fn default_timeout() -> Duration {
    Duration::new("30s")
}

fn default_max_response() -> u64 {
    256 * 1024 * 1024
}

/// How requests are authenticated.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token, usually `"{{ config.api_key }}"`.
        token: Template,
    },
    /// A key sent in a header or a query parameter.
    ApiKey {
        /// The header or query parameter name, e.g. `X-API-Key`.
        name: String,
        /// The key, usually `"{{ config.api_key }}"`.
        value: Template,
        /// Where the key goes.
        #[serde(default, rename = "in")]
        location: ApiKeyLocation,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: Template,
        /// Password.
        #[serde(default = "empty_template")]
        password: Template,
    },
    /// OAuth2 client credentials grant: the token is fetched, cached until it expires and refreshed once on a 401.
    Oauth2ClientCredentials {
        /// Token endpoint URL.
        token_url: Template,
        /// Client id.
        client_id: Template,
        /// Client secret.
        client_secret: Template,
        /// Scopes requested, sent space-separated.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// Extra form parameters of the token request, e.g. `audience`.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        params: IndexMap<String, Template>,
        /// Send the client credentials as HTTP basic auth (`basic`) or in the form body (`body`).
        #[serde(default)]
        credentials_in: CredentialsIn,
    },
    /// OAuth2 refresh-token grant: an access token is fetched with the refresh token; a new refresh token the server returns (rotation) is saved beside the state and used from then on.
    Oauth2RefreshToken {
        /// Token endpoint URL.
        token_url: Template,
        /// Client id.
        client_id: Template,
        /// Client secret (empty for a public client).
        #[serde(default = "empty_template")]
        client_secret: Template,
        /// The refresh token from the authorisation; a rotated one saved beside the state is preferred.
        refresh_token: Template,
        /// Scopes requested, sent space-separated.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// Extra form parameters of the token request.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        params: IndexMap<String, Template>,
        /// Send the client credentials as HTTP basic auth (`basic`) or in the form body (`body`).
        #[serde(default)]
        credentials_in: CredentialsIn,
    },
    /// A login request whose response holds a session token, sent on every request until a 401 or its expiry.
    Session {
        /// The login request.
        login: crate::auth::Login,
        /// JSONPath of the token in the login response, e.g. `$.token`.
        token: JsonPath,
        /// JSONPath of the token's lifetime in seconds in the login response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in: Option<JsonPath>,
        /// How long a token lives when the response does not say, e.g. `1h`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifetime: Option<Duration>,
        /// The header or query parameter that carries the token.
        #[serde(default = "authorization")]
        name: String,
        /// What is sent, `token` being the session token, e.g. `"Token {{ token }}"`.
        #[serde(default = "bearer_token")]
        value: Template,
        /// Where the token goes.
        #[serde(default, rename = "in")]
        location: ApiKeyLocation,
    },
    /// A JWT signed from a key in the configuration, sent as the bearer token or exchanged at `token_url` for an access token.
    Jwt {
        /// Signing algorithm: `RS256`, `ES256` or `HS256`.
        algorithm: crate::auth::JwtAlgorithm,
        /// The PEM private key (RS256, ES256) or the shared secret (HS256).
        key: Template,
        /// The `kid` header, when the API wants it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<Template>,
        /// Claims such as `iss`, `sub`, `aud`, `scope`; `iat` and `exp` are added from the clock.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        claims: IndexMap<String, Template>,
        /// Time from `iat` to `exp`.
        #[serde(default = "default_jwt_lifetime")]
        lifetime: Duration,
        /// How far before now `iat` is set, for servers whose clock runs behind (GitHub suggests `60s`).
        #[serde(default = "zero_duration")]
        backdate: Duration,
        /// Exchange the JWT here (grant `urn:ietf:params:oauth:grant-type:jwt-bearer`) for an access token; without it the JWT itself is the bearer token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_url: Option<Template>,
        /// Extra form parameters of the exchange.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        params: IndexMap<String, Template>,
    },
    /// One of several auth blocks, chosen by a value, e.g. `"{{ config.auth_type }}"`.
    Select {
        /// Renders to the name of one of `options`.
        select: Template,
        /// The auth blocks by name.
        options: IndexMap<String, Auth>,
    },
}

fn authorization() -> String {
    "Authorization".into()
}

fn bearer_token() -> Template {
    Template::new("Bearer {{ token }}")
}

fn default_jwt_lifetime() -> Duration {
    Duration::new("10m")
}

fn zero_duration() -> Duration {
    Duration::new("0s")
}

fn empty_template() -> Template {
    Template::new("")
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    /// A request header.
    #[default]
    Header,
    /// A query parameter (redacted wherever the URL is printed).
    Query,
}

/// Where OAuth2 client credentials go in the token request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsIn {
    /// `client_id` and `client_secret` form fields.
    #[default]
    Body,
    /// HTTP basic authentication.
    Basic,
}

/// The API's rate-limit signals, and a ceiling the client keeps to on its own.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Client-side ceiling shared by every stream and partition of the connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001))]
    pub requests_per_second: Option<f64>,
    /// Requests allowed at once above the steady rate.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub burst: u32,
    /// Header telling how long to wait after a 429 or 503.
    #[serde(default = "default_retry_after")]
    pub retry_after: String,
    /// Header with the requests left in the current window.
    #[serde(default = "default_remaining")]
    pub remaining: String,
    /// Header with the end of the current window.
    #[serde(default = "default_reset")]
    pub reset: String,
    /// How the reset header is written.
    #[serde(default)]
    pub reset_format: ResetFormat,
    /// When remaining falls to this many, every request waits for the reset.
    #[serde(default)]
    pub floor: u64,
    /// Also read the IETF `RateLimit` field (`r` remaining, `t` seconds to reset; the most restrictive policy wins) and the older `RateLimit-Remaining` / `RateLimit-Reset`.
    #[serde(default = "yes")]
    pub ietf_headers: bool,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_second: None,
            burst: 1,
            retry_after: default_retry_after(),
            remaining: default_remaining(),
            reset: default_reset(),
            reset_format: ResetFormat::default(),
            floor: 0,
            ietf_headers: true,
        }
    }
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_retry_after() -> String {
    "Retry-After".into()
}
fn default_remaining() -> String {
    "X-RateLimit-Remaining".into()
}
fn default_reset() -> String {
    "X-RateLimit-Reset".into()
}

/// How a rate-limit reset header is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetFormat {
    /// Unix time in seconds.
    #[default]
    UnixSeconds,
    /// Unix time in milliseconds.
    UnixMillis,
    /// Seconds from now.
    DeltaSeconds,
    /// An HTTP-date.
    HttpDate,
}

/// Which failures are retried, and how the waits grow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts per request, the first included.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// First backoff when no header says how long.
    #[serde(default = "default_initial")]
    pub initial: Duration,
    /// Longest single backoff.
    #[serde(default = "default_max")]
    pub max: Duration,
    /// Longest total wait for one request before giving up.
    #[serde(default = "default_max_total")]
    pub max_total: Duration,
    /// Statuses that are retried.
    #[serde(default = "default_statuses")]
    #[schemars(inner(range(min = 100, max = 599)))]
    pub on_status: Vec<u16>,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            initial: default_initial(),
            max: default_max(),
            max_total: default_max_total(),
            on_status: default_statuses(),
        }
    }
}

fn default_attempts() -> u32 {
    6
}
fn default_initial() -> Duration {
    Duration::new("1s")
}
fn default_max() -> Duration {
    Duration::new("60s")
}
fn default_max_total() -> Duration {
    Duration::new("10m")
}
fn default_statuses() -> Vec<u16> {
    vec![429, 500, 502, 503, 504]
}

/// A collection of records pulled from one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Path joined to `http.base_url`, or an absolute URL.
    pub path: Template,
    /// HTTP method.
    #[serde(default)]
    pub method: Method,
    /// Query parameters.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, Template>,
    /// Headers, on top of `http.headers`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// JSON body; string values are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// JSONPath of the records in a response, e.g. `$.orders[*]`.
    pub records: JsonPath,
    /// Field or fields that identify a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<PrimaryKey>,
    /// How to get the next page.
    #[serde(default)]
    pub pagination: Pagination,
    /// Fetch only what changed since the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// Drop a record whose primary key was already written in this run.
    #[serde(default)]
    pub dedup: bool,
    /// Keep only the records for which this condition holds, e.g.
    /// `record.status != "deleted"`; a dropped record still moves the incremental cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::Condition>,
    /// Steps that reshape each record (add, remove, rename, lift, keep), in order, before
    /// the incremental window, the filter, dedup and output; replaces `defaults.transform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Vec<crate::transform::Step>>,
    /// Makes this a child stream: one pass per record of the parent stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// Lists of values, by name; one pass per combination (their cartesian product, in
    /// declared order), which templates read as `partition.<name>`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub partitions: IndexMap<String, crate::partitions::PartitionList>,
    /// Partition passes running at once; default 1 (in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub partition_concurrency: Option<u32>,
    /// The records' JSON schema, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// The records' JSON schema, from a file relative to the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_file: Option<String>,
    /// Error rules of this stream, tried before `http.errors`; the first match decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::error_rules::ErrorRule>,
}

/// An HTTP method for reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET.
    #[default]
    Get,
    /// POST, for search endpoints.
    Post,
}

/// A primary key: one field, or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PrimaryKey {
    /// One field.
    One(String),
    /// Several fields, in order.
    Many(#[schemars(length(min = 1))] Vec<String>),
}

impl PrimaryKey {
    /// The fields, in order.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            PrimaryKey::One(f) => vec![f.as_str()],
            PrimaryKey::Many(fs) => fs.iter().map(String::as_str).collect(),
        }
    }
}

/// How to get the next page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request, one page.
    #[default]
    None,
    /// `offset` and `limit` query parameters.
    Offset {
        /// Records per page, sent as `limit_param`.
        #[schemars(range(min = 1))]
        limit: u64,
        /// Name of the offset parameter (or where it goes: `{ header: ... }`, `{ body: a.b }`).
        #[serde(default = "default_offset_param")]
        offset_param: PageParam,
        /// Name of the limit parameter (or where it goes).
        #[serde(default = "default_limit_param")]
        limit_param: PageParam,
        /// First offset.
        #[serde(default)]
        start: u64,
        /// JSONPath of the total record count; paging stops once it is reached.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<JsonPath>,
        /// Pages in flight at once once the first page told `total`; written in page
        /// order. Absent: one at a time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = 64))]
        concurrency: Option<u32>,
        /// Stop at the first record for which this condition holds (e.g.
        /// `record.created_at < incremental.start` in a feed sorted newest first): the
        /// records before it are kept, it and the rest are dropped, no further page is read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_when: Option<crate::Condition>,
        /// Stop after this many pages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1))]
        max_pages: Option<u64>,
    },
    /// A page number query parameter.
    PageNumber {
        /// Name of the page parameter (or where it goes: `{ header: ... }`, `{ body: a.b }`).
        #[serde(default = "default_page_param")]
        page_param: PageParam,
        /// Number of the first page.
        #[serde(default = "one_u64")]
        start: u64,
        /// Records per page, sent as `size_param` when that is set; a shorter page is the last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1))]
        size: Option<u64>,
        /// Name of the page size parameter (or where it goes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<PageParam>,
        /// JSONPath of the total record count; paging stops once it is reached.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<JsonPath>,
        /// JSONPath of the number of pages; paging stops after that page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_pages: Option<JsonPath>,
        /// Pages in flight at once once the first page told `total_pages` (or `total`,
        /// with `size`); written in page order. Absent: one at a time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = 64))]
        concurrency: Option<u32>,
        /// Stop at the first record for which this condition holds (e.g.
        /// `record.created_at < incremental.start` in a feed sorted newest first): the
        /// records before it are kept, it and the rest are dropped, no further page is read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_when: Option<crate::Condition>,
        /// Stop after this many pages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1))]
        max_pages: Option<u64>,
    },
    /// A cursor from the body (`next`), a header (`next_header`) or the page's last record
    /// (`next_record`), sent back as `param`.
    Cursor {
        /// JSONPath of the next cursor in the body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<JsonPath>,
        /// Response header holding the next cursor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_header: Option<String>,
        /// Template over the page's last record giving the next cursor, e.g.
        /// `"{{ record.id }}"` (a `since_id` API) or `"{{ record.id + 1 }}"`; it keeps its
        /// JSON type. An empty page, or one shorter than `page_size.value`, is the last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_record: Option<Template>,
        /// Query parameter that carries the cursor (or where it goes: `{ header: ... }`,
        /// `{ body: variables.after }`); left out while there is no cursor (the first page).
        param: PageParam,
        /// Page size parameter, sent with every request (a short page does not end a cursor stream; a missing next cursor does).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_size: Option<PageSize>,
        /// JSONPath of a boolean that says whether another page follows (Stripe's
        /// `$.has_more`): `false` ends the stream after this page; anything but `true` or
        /// `false` there is an error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        has_more: Option<JsonPath>,
        /// Stop at the first record for which this condition holds (e.g.
        /// `record.created_at < incremental.start` in a feed sorted newest first): the
        /// records before it are kept, it and the rest are dropped, no further page is read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_when: Option<crate::Condition>,
        /// Stop after this many pages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1))]
        max_pages: Option<u64>,
    },
    /// The URL of the next page, from the body.
    NextUrl {
        /// JSONPath of the next page's URL, relative or absolute.
        next: JsonPath,
        /// JSONPath of a boolean that says whether another page follows (Stripe's
        /// `$.has_more`): `false` ends the stream after this page; anything but `true` or
        /// `false` there is an error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        has_more: Option<JsonPath>,
        /// Stop at the first record for which this condition holds (e.g.
        /// `record.created_at < incremental.start` in a feed sorted newest first): the
        /// records before it are kept, it and the rest are dropped, no further page is read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_when: Option<crate::Condition>,
        /// Stop after this many pages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1))]
        max_pages: Option<u64>,
    },
    /// RFC 8288 `Link: <...>; rel="next"` headers.
    LinkHeader {
        /// Link relation of the next page.
        #[serde(default = "default_rel")]
        rel: String,
        /// Stop at the first record for which this condition holds (e.g.
        /// `record.created_at < incremental.start` in a feed sorted newest first): the
        /// records before it are kept, it and the rest are dropped, no further page is read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_when: Option<crate::Condition>,
        /// Stop after this many pages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1))]
        max_pages: Option<u64>,
    },
}

impl Pagination {
    /// The `max_pages` stop rule, whatever the kind.
    pub fn max_pages(&self) -> Option<u64> {
        match self {
            Pagination::None => Some(1),
            Pagination::Offset { max_pages, .. }
            | Pagination::PageNumber { max_pages, .. }
            | Pagination::Cursor { max_pages, .. }
            | Pagination::NextUrl { max_pages, .. }
            | Pagination::LinkHeader { max_pages, .. } => *max_pages,
        }
    }

    /// `concurrency` of offset and page-number pagination: the most pages in flight
    /// once the total is known; 1 when absent or for any other kind.
    pub fn page_concurrency(&self) -> u32 {
        match self {
            Pagination::Offset { concurrency, .. } | Pagination::PageNumber { concurrency, .. } => {
                concurrency.unwrap_or(1).max(1)
            }
            _ => 1,
        }
    }

    /// The `has_more` path (cursor and next-URL pagination).
    pub fn has_more(&self) -> Option<&JsonPath> {
        match self {
            Pagination::Cursor { has_more, .. } | Pagination::NextUrl { has_more, .. } => {
                has_more.as_ref()
            }
            _ => None,
        }
    }

    /// The `stop_when` condition, whatever the kind.
    pub fn stop_when(&self) -> Option<&crate::Condition> {
        match self {
            Pagination::None => None,
            Pagination::Offset { stop_when, .. }
            | Pagination::PageNumber { stop_when, .. }
            | Pagination::Cursor { stop_when, .. }
            | Pagination::NextUrl { stop_when, .. }
            | Pagination::LinkHeader { stop_when, .. } => stop_when.as_ref(),
        }
    }
}

fn default_offset_param() -> PageParam {
    "offset".into()
}
fn default_limit_param() -> PageParam {
    "limit".into()
}
fn default_page_param() -> PageParam {
    "page".into()
}
fn default_rel() -> String {
    "next".into()
}
fn one_u64() -> u64 {
    1
}

/// A page size sent with cursor pagination.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageSize {
    /// Query parameter name (or where it goes: `{ header: ... }`, `{ body: a.b }`).
    pub param: PageParam,
    /// Records per page.
    #[schemars(range(min = 1))]
    pub value: u64,
}

/// Fetch only the records that changed since the last run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Field of the record that grows with each change: a name, or a JSONPath into the record.
    pub cursor_field: String,
    /// Query parameter that filters on the cursor (inclusive); without it the runtime filters itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Query parameter for the end of the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_param: Option<String>,
    /// Value of `end_param`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Template>,
    /// Where the first run starts, usually `"{{ config.start_date }}"`.
    pub start: Template,
    /// Re-read this far behind the saved cursor, for late writes, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<Duration>,
    /// How cursor values compare.
    #[serde(default)]
    pub cursor_type: CursorType,
    /// Format of a datetime cursor that is not RFC 3339: a strftime pattern such as
    /// `%Y-%m-%d %H:%M:%S`, `date`, or a `time` format description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Format of the value sent in `param` and `end_param` when the API filters in another
    /// form than its records carry: `rfc3339`, `date`, `unix_seconds`, `unix_millis`,
    /// `unix_micros` or a strftime pattern. Default: the cursor's own form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_format: Option<String>,
    /// The API returns records sorted by the cursor, so state is saved after every page.
    #[serde(default)]
    pub sorted: bool,
    /// A time cursor further ahead of now than this is written but not saved as the
    /// cursor, so one record from the far future cannot freeze the stream (default `1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub future_tolerance: Option<Duration>,
    /// Split the range into windows of this length, fetched concurrently, each with
    /// `incremental.start`/`end` of its own window (see [`crate::DateWindows`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<crate::DateWindows>,
}

impl Incremental {
    /// The default of `future_tolerance`: one day, beyond any sane clock skew or time zone slip.
    pub const DEFAULT_FUTURE_TOLERANCE: std::time::Duration =
        std::time::Duration::from_secs(24 * 3600);

    /// `future_tolerance`, or its default.
    pub fn future_tolerance(&self) -> std::time::Duration {
        self.future_tolerance
            .as_ref()
            .map_or(Self::DEFAULT_FUTURE_TOLERANCE, Duration::get)
    }
}

/// How cursor values compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CursorType {
    /// Date-times (RFC 3339 unless `format` says otherwise).
    #[default]
    Datetime,
    /// Integers, such as ids or versions: "the future" has no meaning for them.
    Integer,
    /// Strings, compared byte-wise.
    String,
    /// Unix timestamps in seconds (integers), checked against `future_tolerance`.
    UnixSeconds,
    /// Unix timestamps in milliseconds (integers), checked against `future_tolerance`.
    UnixMillis,
}

impl CursorType {
    /// Whether values are points in time, so a value far in the future is suspect.
    pub fn is_time(self) -> bool {
        !matches!(self, Self::Integer | Self::String)
    }
}

/// The parent of a child stream.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parent {
    /// Name of the parent stream.
    pub stream: String,
    /// Field of the parent record that identifies it, available as `parent.<field>`.
    pub key: String,
    /// Parent fields copied into each child record: new field name -> parent field.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub include: IndexMap<String, String>,
    /// Parent records processed at once.
    #[serde(default = "default_parent_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
    /// Under an incremental parent: run for every parent record fetched, not only the
    /// changed ones the parent writes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_records: bool,
}

fn default_parent_concurrency() -> u32 {
    4
}

/// A signed webhook the API sends.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// URL path served, e.g. `/webhooks/orders`.
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// Stream whose output the events go to (and whose primary key `version_field` uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// How deliveries are signed.
    pub signature: Signature,
    /// JSONPath of the event id in the body, for deduplication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<JsonPath>,
    /// Header holding the event id, when the body has none (e.g. `X-GitHub-Delivery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_header: Option<String>,
    /// JSONPath of the record inside the event; the whole body when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<JsonPath>,
    /// Field of the record that orders its versions; enables the latest view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_field: Option<String>,
    /// Largest body accepted, in bytes.
    #[serde(default = "default_max_body")]
    #[schemars(range(min = 1))]
    pub max_body_bytes: u64,
}

fn default_max_body() -> u64 {
    1024 * 1024
}

/// A webhook signature scheme.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum Signature {
    /// HMAC-SHA256 of the raw body in a header (GitHub's `X-Hub-Signature-256: sha256=<hex>` style).
    HmacSha256 {
        /// Header carrying the signature.
        header: String,
        /// Text before the signature, e.g. `sha256=`.
        #[serde(default)]
        prefix: String,
        /// How the signature is encoded.
        #[serde(default)]
        encoding: SignatureEncoding,
        /// Secrets accepted; several during a rotation.
        #[schemars(length(min = 1))]
        secrets: Vec<Template>,
    },
    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>` over `<ts>.<body>`.
    Stripe {
        /// Header carrying the signature.
        #[serde(default = "default_stripe_header")]
        header: String,
        /// Secrets accepted (`whsec_...`, used as they are).
        #[schemars(length(min = 1))]
        secrets: Vec<Template>,
        /// Oldest timestamp accepted, relative to now.
        #[serde(default = "default_tolerance")]
        tolerance: Duration,
    },
    /// Standard Webhooks 1.0: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks {
        /// Secrets accepted (`whsec_` + base64).
        #[schemars(length(min = 1))]
        secrets: Vec<Template>,
        /// Oldest timestamp accepted, relative to now.
        #[serde(default = "default_tolerance")]
        tolerance: Duration,
    },
}

fn default_stripe_header() -> String {
    "Stripe-Signature".into()
}
fn default_tolerance() -> Duration {
    Duration::new("5m")
}

/// How an HMAC signature is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Lowercase or uppercase hexadecimal.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// A write endpoint that `runtime push` sends records to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushTarget {
    /// HTTP method.
    #[serde(default)]
    pub method: WriteMethod,
    /// Path joined to `http.base_url`; may use `record.<field>`.
    pub path: Template,
    /// Headers, on top of `http.headers`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// JSON body with templates over `record`; the record as it is when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How each request's idempotency key is made.
    pub idempotency: Idempotency,
    /// JSONPath of the created object's id in the response, saved with the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<JsonPath>,
    /// What a 409 or 422 does to the run.
    #[serde(default)]
    pub on_conflict: OnConflict,
    /// Records sent at once.
    #[serde(default = "default_push_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
}

fn default_push_concurrency() -> u32 {
    4
}

/// An HTTP method for writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WriteMethod {
    /// POST.
    #[default]
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
}

/// How the idempotency key of a record is made.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Idempotency {
    /// Header carrying the key.
    #[serde(default = "default_idem_header")]
    pub header: String,
    /// A record field that already holds the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// Record fields the key is derived from (UUIDv5 in the connector and target's namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_fields: Vec<String>,
}

fn default_idem_header() -> String {
    "Idempotency-Key".into()
}

/// What a 409 or 422 answer does to a push run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Stop the run (records already in flight finish).
    #[default]
    Stop,
    /// Report it and go on with the next record.
    Skip,
}
