//! Statements built at run time (IN lists, multi-row INSERTs) that both
//! engines accept.
//!
//! sqlx's `QueryBuilder` writes `?` placeholders for the `Any` driver,
//! which PostgreSQL rejects; [`Sql`] writes `$1, $2, …` for PostgreSQL and
//! `?` for SQLite, whose driver looks each `$n` up by name (a multi-row
//! INSERT of thousands of values spent most of a batch doing that). It
//! keeps the small part of the `QueryBuilder` interface the store uses.

use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{AnyConnection, Arguments, Encode, FromRow, Type};

use crate::error::Result;

/// The most values one statement of [`fetch_in`] binds in its `IN (…)`
/// list. PostgreSQL refuses a statement of more than 65,535 parameters,
/// and a batch's lists grow with what its mails name (a References header
/// of thousands of Message-IDs, a delivery report for thousands of
/// recipients, a large `batch`), so a long list is split instead of
/// failing the batch on every retry.
pub const IN_LIST_MAX: usize = 1_000;

/// The rows of the statements `build` makes, one per slice of at most
/// [`IN_LIST_MAX`] of `items`. Each statement is whole (an `ORDER BY`
/// orders within its slice), so a list keyed by owner keeps each owner's
/// rows together and in order.
pub async fn fetch_rows_in<V>(
    conn: &mut AnyConnection,
    items: Vec<V>,
    mut build: impl FnMut(Placeholders, Vec<V>) -> Sql,
) -> Result<Vec<AnyRow>> {
    let style = Placeholders::of(conn);
    let mut items = items.into_iter().peekable();
    let mut rows = Vec::new();
    while items.peek().is_some() {
        let slice: Vec<V> = items.by_ref().take(IN_LIST_MAX).collect();
        let sql = build(style, slice);
        rows.extend(sql.build().fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// [`fetch_rows_in`], each row read as `T`.
pub async fn fetch_in<V, T>(
    conn: &mut AnyConnection,
    items: Vec<V>,
    build: impl FnMut(Placeholders, Vec<V>) -> Sql,
) -> Result<Vec<T>>
where
    T: for<'r> FromRow<'r, AnyRow>,
{
    let rows = fetch_rows_in(conn, items, build).await?;
    Ok(rows.iter().map(T::from_row).collect::<std::result::Result<_, _>>()?)
}

/// The placeholder style of an engine: `$n` (PostgreSQL) or `?` (SQLite).
#[derive(Debug, Clone, Copy)]
pub struct Placeholders(bool);

impl Placeholders {
    /// The style of the engine behind `conn`.
    pub fn of(conn: &AnyConnection) -> Placeholders {
        Placeholders(conn.backend_name() != "SQLite")
    }

    /// `$n` placeholders: PostgreSQL, where each statement is a round trip.
    pub fn numbered(self) -> bool {
        self.0
    }

    /// The style of `backend`: for statements built before a connection
    /// is at hand.
    pub fn of_backend(backend: super::Backend) -> Placeholders {
        Placeholders(backend == super::Backend::Postgres)
    }
}

/// A statement being built, with its bound values.
#[derive(Default)]
pub struct Sql {
    text: String,
    args: AnyArguments,
    bound: usize,
    /// `$n` (PostgreSQL) rather than `?` (SQLite).
    numbered: bool,
}

impl Sql {
    /// Starts a statement with `head`, in the placeholder style of the
    /// engine behind `conn`.
    pub fn new(conn: &AnyConnection, head: impl Into<String>) -> Sql {
        Sql::styled(Placeholders::of(conn), head)
    }

    /// Starts a statement with `head` in `style`: for code that builds
    /// statements while the connection is lent out (see [`fetch_in`]).
    pub fn styled(style: Placeholders, head: impl Into<String>) -> Sql {
        Sql::with_style(head, style.0)
    }

    fn with_style(head: impl Into<String>, numbered: bool) -> Sql {
        Sql {
            text: head.into(),
            numbered,
            ..Sql::default()
        }
    }

    /// Appends SQL text as is.
    pub fn push(&mut self, text: impl std::fmt::Display) -> &mut Sql {
        use std::fmt::Write;
        let _ = write!(self.text, "{text}");
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn push_bind<'q, T>(&mut self, value: T) -> &mut Sql
    where
        T: Encode<'q, Any> + Type<Any> + 'q,
    {
        // Encoding a plain value (integer, text, bytes, bool) into `Any`'s
        // buffer cannot fail: it only copies the value.
        self.args.add(value).expect("encoding a plain value");
        self.bound += 1;
        if !self.numbered {
            return self.push("?");
        }
        let n = self.bound;
        self.push(format_args!("${n}"))
    }

    /// ` IN ($n, …)` over `items`. An empty list gives `IN (NULL)`, which
    /// matches nothing on both engines instead of being a syntax error.
    ///
    /// The list is padded to a power of two by repeating its last item
    /// (which matches nothing more): a list of any length would be a
    /// statement text seen once, parsed and planned anew in every batch and
    /// pushing the statements that recur out of sqlx's cache; padded, a
    /// query has a dozen texts at most.
    pub fn push_in<'q, T>(&mut self, items: impl IntoIterator<Item = T>) -> &mut Sql
    where
        T: Encode<'q, Any> + Type<Any> + Clone + 'q,
    {
        let mut items: Vec<T> = items.into_iter().collect();
        if let Some(last) = items.last().cloned() {
            items.resize(items.len().next_power_of_two(), last);
        }
        let empty = items.is_empty();
        self.push(" IN (");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(item);
        }
        if empty {
            self.push("NULL");
        }
        self.push(")")
    }

    /// `VALUES (…), (…)`: one parenthesised group per row, whose values
    /// `bind` pushes.
    pub fn push_values<T>(&mut self, rows: impl IntoIterator<Item = T>, mut bind: impl FnMut(&mut Values<'_>, T)) {
        self.push("VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            bind(&mut Values { sql: self, first: true }, row);
            self.push(")");
        }
    }

    /// The statement, ready to execute.
    pub fn build(self) -> Query<'static, Any, AnyArguments> {
        sqlx::query_with(sqlx::AssertSqlSafe(self.text), self.args)
    }

    /// The statement, its rows read as `T`.
    pub fn build_query_as<T>(self) -> QueryAs<'static, Any, T, AnyArguments>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_as_with(sqlx::AssertSqlSafe(self.text), self.args)
    }

    /// The statement, its rows' first column read as `T`.
    pub fn build_query_scalar<T>(self) -> QueryScalar<'static, Any, T, AnyArguments>
    where
        (T,): for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_scalar_with(sqlx::AssertSqlSafe(self.text), self.args)
    }

    /// The SQL text so far (for tests).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The values of one row of [`Sql::push_values`], comma-separated.
pub struct Values<'a> {
    sql: &'a mut Sql,
    first: bool,
}

impl Values<'_> {
    /// Binds the row's next value.
    pub fn push_bind<'q, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'q, Any> + Type<Any> + 'q,
    {
        if !self.first {
            self.sql.push(", ");
        }
        self.first = false;
        self.sql.push_bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let mut sql = Sql::with_style("INSERT INTO t (a, b) ", true);
        sql.push_values([(1i64, "x"), (2, "y")], |v, (a, b)| {
            v.push_bind(a).push_bind(b);
        });
        sql.push(" ON CONFLICT DO NOTHING");
        assert_eq!(
            sql.text(),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        let mut sql = Sql::with_style("SELECT 1 WHERE x", true);
        sql.push_in([5i64, 6]);
        sql.push(" AND y").push_in(Vec::<i64>::new());
        assert_eq!(sql.text(), "SELECT 1 WHERE x IN ($1, $2) AND y IN (NULL)");
        // Padded to a power of two with the last item: few texts per query.
        for (n, placeholders) in [(1, 1), (3, 4), (5, 8), (8, 8), (9, 16)] {
            let mut sql = Sql::with_style("x", true);
            sql.push_in(0..n as i64);
            let expected: Vec<String> = (1..=placeholders).map(|i| format!("${i}")).collect();
            assert_eq!(sql.text(), format!("x IN ({})", expected.join(", ")), "{n}");
            assert_eq!(sql.bound, placeholders);
        }
    }

    /// SQLite gets positional `?`, which its driver binds without lookups.
    #[tokio::test]
    async fn sqlite_gets_positional_placeholders_that_bind() {
        sqlx::any::install_default_drivers();
        let mut conn = <AnyConnection as sqlx::Connection>::connect("sqlite::memory:")
            .await
            .unwrap();
        let mut sql = Sql::new(&conn, "SELECT COUNT(*) FROM (SELECT 1 AS x UNION ALL SELECT 2) WHERE x");
        sql.push_in([2i64, 3]);
        assert!(sql.text().ends_with("IN (?, ?)"), "{}", sql.text());
        let n: i64 = sql.build_query_scalar().fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 1);
        // The padding repeats the last item, which matches nothing more.
        let mut sql = Sql::new(&conn, "SELECT COUNT(*) FROM (SELECT 1 AS x UNION ALL SELECT 2) WHERE x");
        sql.push_in([1i64, 7, 2]);
        assert!(sql.text().ends_with("IN (?, ?, ?, ?)"), "{}", sql.text());
        let n: i64 = sql.build_query_scalar().fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 2);
    }

    /// A list longer than one statement takes is split, and every row of
    /// every slice comes back.
    #[tokio::test]
    async fn fetch_in_splits_a_long_list_and_keeps_every_row() {
        sqlx::any::install_default_drivers();
        let mut conn = <AnyConnection as sqlx::Connection>::connect("sqlite::memory:")
            .await
            .unwrap();
        let mut statements = 0;
        let items: Vec<i64> = (0..(2 * IN_LIST_MAX as i64 + 500)).collect();
        let rows: Vec<(i64,)> = fetch_in(&mut conn, items, |style, slice| {
            statements += 1;
            assert!(slice.len() <= IN_LIST_MAX);
            let mut sql = Sql::styled(style, "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 5000) SELECT x FROM n WHERE x");
            sql.push_in(slice);
            sql
        })
        .await
        .unwrap();
        assert_eq!(statements, 3);
        assert_eq!(rows.len(), 2 * IN_LIST_MAX + 500);
        assert_eq!(rows.last(), Some(&(2 * IN_LIST_MAX as i64 + 499,)));
    }
}
