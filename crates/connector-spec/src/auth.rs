//! The parts of the auth kinds that fetch or make their token: a session's login request,
//! a JWT's algorithm. The kinds themselves are variants of [`crate::Auth`].

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::Template;

/// The login request of `kind: session`, whose response holds the session token.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Login URL: absolute, or a path joined to `http.base_url`.
    pub url: Template,
    /// HTTP method of the login request.
    #[serde(default = "post")]
    pub method: LoginMethod,
    /// Headers of the login request (only these: not `http.headers`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// JSON body; string values are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Form fields sent as `application/x-www-form-urlencoded` instead of a JSON body.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub form: IndexMap<String, Template>,
}

fn post() -> LoginMethod {
    LoginMethod::Post
}

/// The method of a login request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LoginMethod {
    /// `POST` (the default).
    Post,
    /// `GET`.
    Get,
    /// `PUT`.
    Put,
}

impl LoginMethod {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Post => "POST",
            LoginMethod::Get => "GET",
            LoginMethod::Put => "PUT",
        }
    }
}

/// How a JWT is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JwtAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256, from a PEM RSA private key (GitHub Apps, Google).
    RS256,
    /// ECDSA P-256 with SHA-256, from a PEM EC private key (PKCS#8).
    ES256,
    /// HMAC with SHA-256, from a shared secret.
    HS256,
}

/// Claims the runtime computes itself, so a spec may not set them.
pub const COMPUTED_CLAIMS: &[&str] = &["iat", "exp"];
