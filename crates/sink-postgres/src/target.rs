//! `postgres://user@host:port/db?schema=raw`: where to load, without the password.

use std::time::Duration;

use sink_sql::LoadError;

/// The environment variable the password is read from (libpq's own).
pub const PASSWORD_ENV: &str = "PGPASSWORD";

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL destination: server, database, schema and user. The password is never
/// part of it; it comes from [`PASSWORD_ENV`] when the connection opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Database.
    pub dbname: String,
    /// Schema the tables go in (created when missing).
    pub schema: String,
}

impl PgTarget {
    /// Parses a `postgres://` or `postgresql://` URL. A password in it is refused (it would
    /// be visible to every user of the machine in the process list); so is TLS, which this
    /// build does not speak, and any query parameter but `schema` and `sslmode=disable`.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        let url = url::Url::parse(text).map_err(|e| {
            LoadError(format!(
                "--to {}: not a PostgreSQL URL ({e}); expected postgres://USER@HOST:PORT/DATABASE?schema=SCHEMA",
                mask(text)
            ))
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(LoadError(format!(
                "--to {}: the scheme must be postgres://",
                mask(text)
            )));
        }
        if url.password().is_some() {
            return Err(LoadError(format!(
                "--to {}: the URL holds a password; remove it and set {PASSWORD_ENV} instead (a password on the command line is visible to every user of the machine)",
                mask(text)
            )));
        }
        let user = match url.username() {
            "" => std::env::var("PGUSER").map_err(|_| {
                LoadError(format!(
                    "--to {}: no user; write postgres://USER@HOST/... or set PGUSER",
                    mask(text)
                ))
            })?,
            u => decode(u),
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_matches(['[', ']']).to_owned(),
            _ => {
                return Err(LoadError(format!(
                    "--to {}: no host; write postgres://USER@HOST:PORT/DATABASE",
                    mask(text)
                )));
            }
        };
        let dbname = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            d => decode(d),
        };
        let mut schema = "public".to_owned();
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("schema", s) if !s.is_empty() => schema = s.to_owned(),
                ("sslmode", "disable" | "prefer" | "allow") => {}
                (k, v) => {
                    return Err(LoadError(format!(
                        "--to {}: unsupported parameter {k}={v}; only `schema` (and sslmode=disable: this build does not speak TLS to PostgreSQL) are read",
                        mask(text)
                    )));
                }
            }
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(5432),
            user,
            dbname,
            schema,
        })
    }

    /// The destination as logs and errors show it: `postgres://user@host:port/db?schema=s`.
    pub fn shown(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}?schema={}",
            self.user, self.host, self.port, self.dbname, self.schema
        )
    }

    /// The client configuration, with the password from the environment.
    pub fn config(&self) -> postgres::Config {
        let mut c = postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("runtime")
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(60));
        if let Ok(p) = std::env::var(PASSWORD_ENV) {
            c.password(p);
        }
        c
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// A URL with any password replaced by `***`, for messages about a URL that may not parse.
pub fn mask(text: &str) -> String {
    if let Ok(mut u) = url::Url::parse(text) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    // Unparseable: hide everything between `//` and the last `@` of the authority.
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}***{}", &text[..s + 3], &text[at..]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_never_shows_a_password() {
        let t = PgTarget::parse("postgres://loader@db.example:6543/shop?schema=raw").unwrap();
        assert_eq!(
            t.shown(),
            "postgres://loader@db.example:6543/shop?schema=raw"
        );
        let t = PgTarget::parse("postgresql://u@h/").unwrap();
        assert_eq!(
            (t.port, t.dbname.as_str(), t.schema.as_str()),
            (5432, "u", "public")
        );
        let e = PgTarget::parse("postgres://u:hunter2@h/db").unwrap_err();
        assert!(e.0.contains("PGPASSWORD"), "{e}");
        assert!(!e.0.contains("hunter2"), "{e}");
        let e = PgTarget::parse("postgres://u@h/db?sslmode=require").unwrap_err();
        assert!(e.0.contains("TLS"), "{e}");
        let e = PgTarget::parse("postgres://u:hunter2@h:99999/db").unwrap_err();
        assert!(!e.0.contains("hunter2"), "{e}");
        assert!(PgTarget::parse("mysql://u@h/db").is_err());
    }
}
