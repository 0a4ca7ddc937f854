//! Every table of a database rendered to comparable values, so a SQLite store and its
//! PostgreSQL copy can be compared row by row.
//!
//! Written independently of `store::copy`: tables, columns and keys are read from each
//! database's own catalogue, and each value is rendered by what it is there (SQLite's storage
//! class, PostgreSQL's column type). The one rendering rule that bridges the two: a PostgreSQL
//! boolean is the 0 or 1 SQLite stores for a flag.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row, SqliteConnection, TypeInfo, ValueRef};

/// One value, comparable across the two databases.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    fn rank(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Int(_) => 1,
            Cell::Real(_) => 2,
            Cell::Text(_) => 3,
            Cell::Bytes(_) => 4,
        }
    }

    /// A total order (bytewise for text), the same on both sides whatever the collation.
    fn order(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (Cell::Int(a), Cell::Int(b)) => a.cmp(b),
            (Cell::Real(a), Cell::Real(b)) => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Cell::Bytes(a), Cell::Bytes(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

/// One table: its columns and its rows in primary-key order.
#[derive(Debug)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Table name → contents (the migrations' bookkeeping left out).
pub type Dump = BTreeMap<String, Rows>;

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Sorts rows by the key columns at `key`, then whole rows (for tables without a key).
fn sort(rows: &mut [Vec<Cell>], key: &[usize]) {
    rows.sort_by(|a, b| {
        let by_key = key.iter().map(|&i| a[i].order(&b[i])).find(|o| o.is_ne());
        by_key.unwrap_or_else(|| {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.order(y))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    });
}

fn sqlite_cell(row: &SqliteRow, i: usize) -> Cell {
    let raw = row.try_get_raw(i).unwrap();
    if raw.is_null() {
        return Cell::Null;
    }
    match raw.type_info().name() {
        "INTEGER" => Cell::Int(row.get(i)),
        "REAL" => Cell::Real(row.get(i)),
        "TEXT" => Cell::Text(row.get(i)),
        "BLOB" => Cell::Bytes(row.get(i)),
        other => panic!("SQLite storage class {other}"),
    }
}

/// Every table of the SQLite store at `path`, opened read-only.
pub async fn dump_sqlite(path: &Path) -> Dump {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut dump = Dump::new();
    for table in tables {
        let info: Vec<(String, i64)> = sqlx::query_as("SELECT name, pk FROM pragma_table_info($1) ORDER BY cid")
            .bind(&table)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let columns: Vec<String> = info.iter().map(|(c, _)| c.clone()).collect();
        let mut key: Vec<(i64, usize)> = info
            .iter()
            .enumerate()
            .filter(|(_, (_, pk))| *pk > 0)
            .map(|(i, (_, pk))| (*pk, i))
            .collect();
        key.sort();
        let key: Vec<usize> = key.into_iter().map(|(_, i)| i).collect();
        let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let sql = format!("SELECT {} FROM {}", list.join(", "), quote(&table));
        let mut rows: Vec<Vec<Cell>> = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (0..columns.len()).map(|i| sqlite_cell(r, i)).collect())
            .collect();
        sort(&mut rows, &key);
        dump.insert(table, Rows { columns, rows });
    }
    conn.close().await.unwrap();
    dump
}

fn pg_cell(row: &PgRow, i: usize, data_type: &str) -> Cell {
    let cell = match data_type {
        "bigint" => row.get::<Option<i64>, _>(i).map(Cell::Int),
        "integer" => row.get::<Option<i32>, _>(i).map(|n| Cell::Int(n.into())),
        "smallint" => row.get::<Option<i16>, _>(i).map(|n| Cell::Int(n.into())),
        "boolean" => row.get::<Option<bool>, _>(i).map(|b| Cell::Int(b.into())),
        "double precision" => row.get::<Option<f64>, _>(i).map(Cell::Real),
        "text" | "character varying" => row.get::<Option<String>, _>(i).map(Cell::Text),
        "bytea" => row.get::<Option<Vec<u8>>, _>(i).map(Cell::Bytes),
        other => panic!("column type {other} not rendered"),
    };
    cell.unwrap_or(Cell::Null)
}

/// Every table of the current schema of the PostgreSQL database behind `conn`.
pub async fn dump_pg(conn: &mut PgConnection) -> Dump {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text
         FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND c.table_name <> '_sqlx_migrations'
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut tables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (table, column, data_type) in columns {
        // PostgreSQL's own bookkeeping, not the store's data.
        if mailroom::store::POSTGRES_ONLY_TABLES.contains(&table.as_str()) {
            continue;
        }
        tables.entry(table).or_default().push((column, data_type));
    }
    let mut dump = Dump::new();
    for (table, columns) in tables {
        let key_names: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = $1::regclass AND i.indisprimary
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(quote(&table))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let names: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
        let key: Vec<usize> = key_names
            .iter()
            .map(|k| names.iter().position(|c| c == k).unwrap())
            .collect();
        let list: Vec<String> = names.iter().map(|c| quote(c)).collect();
        let sql = format!("SELECT {} FROM {}", list.join(", "), quote(&table));
        let mut rows: Vec<Vec<Cell>> = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|r| columns.iter().enumerate().map(|(i, (_, t))| pg_cell(r, i, t)).collect())
            .collect();
        sort(&mut rows, &key);
        dump.insert(table, Rows { columns: names, rows });
    }
    dump
}

/// What `db copy --replace-nul` stores for SQLite text holding NUL characters.
pub fn replace_nul_in_text(dump: &mut Dump) {
    for rows in dump.values_mut() {
        for cell in rows.rows.iter_mut().flatten() {
            if let Cell::Text(text) = cell {
                *text = text.replace('\0', "\u{FFFD}");
            }
        }
    }
}
