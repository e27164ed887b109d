//! One connection type for both dialects: SQLite (one machine, embedded) and
//! PostgreSQL (several instances sharing state). Chosen by the database URL at
//! start; everything above this file is written once against [`AnyConnection`].

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::ManageConnection;
use diesel::sqlite::SqliteConnection;
use std::borrow::Cow;

/// A connection to either database.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `postgres://` and `postgresql://` URLs are PostgreSQL; anything else is a
    /// SQLite file path.
    pub fn of_url(url: &str) -> Dialect {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }
}

impl AnyConnection {
    pub fn dialect(&self) -> Dialect {
        match self {
            AnyConnection::Sqlite(_) => Dialect::Sqlite,
            AnyConnection::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Raw SQL is written with `?` placeholders; PostgreSQL numbers them (`$1`...).
    /// None of our statements has a `?` inside a string literal.
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self.dialect() {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => Cow::Owned(number_placeholders(sql)),
        }
    }
}

/// `?` → `$1`, `$2`... in order.
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Opens connections of the URL's dialect for the r2d2 pool. (Letting the
/// multi-connection guess by trying each dialect in turn would turn a PostgreSQL
/// outage into a SQLite file named like the URL.)
#[derive(Debug)]
pub struct AnyManager {
    url: String,
    dialect: Dialect,
}

impl AnyManager {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            dialect: Dialect::of_url(url),
        }
    }
}

impl ManageConnection for AnyManager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        let conn = match self.dialect {
            Dialect::Sqlite => SqliteConnection::establish(&self.url).map(AnyConnection::Sqlite),
            Dialect::Postgres => PgConnection::establish(&self.url).map(AnyConnection::Postgres),
        };
        conn.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        match conn {
            AnyConnection::Sqlite(_) => false,
            AnyConnection::Postgres(c) => diesel::r2d2::R2D2Connection::is_broken(c),
        }
    }
}

/// The pool's connection errors, as one line at most once a minute: while the
/// database is away every attempt fails, and each would otherwise be logged.
#[derive(Debug)]
pub struct OutageLog(crate::clock::LogThrottle);

impl Default for OutageLog {
    fn default() -> Self {
        Self(crate::clock::LogThrottle::per_minute())
    }
}

impl diesel::r2d2::HandleError<diesel::r2d2::Error> for OutageLog {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        if self.0.due() {
            let text = error.to_string();
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            tracing::error!(error = %line, "cannot connect to the database; retrying (logged once a minute)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_numbers_the_placeholders() {
        assert_eq!(
            number_placeholders("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(Dialect::of_url("postgres://x/y"), Dialect::Postgres);
        assert_eq!(Dialect::of_url("postgresql://x/y"), Dialect::Postgres);
        assert_eq!(Dialect::of_url("/tmp/x.db"), Dialect::Sqlite);
    }
}
