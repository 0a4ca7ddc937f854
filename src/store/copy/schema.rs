//! What there is to copy, read from the two databases themselves rather
//! than listed in code: a table or column a later migration adds is copied
//! without touching `db copy`.
//!
//! The SQLite store says which tables and columns hold data and in which
//! order rows are keyed; the PostgreSQL target says what type each column
//! takes and which foreign keys it enforces (those decide the insert order,
//! since they are the ones that can refuse a row). Both must list the same
//! tables and columns, or the copy would drop or invent data.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{PgConnection, Row as _, SqliteConnection};

use crate::error::{Error, Result};

/// The PostgreSQL column types `db copy` fills (`information_schema`'s
/// `data_type`). Anything else stops the copy before a row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
}

impl PgType {
    fn parse(data_type: &str) -> Option<PgType> {
        Some(match data_type {
            "boolean" => PgType::Bool,
            "smallint" => PgType::Int2,
            "integer" => PgType::Int4,
            "bigint" => PgType::Int8,
            "real" => PgType::Float4,
            "double precision" => PgType::Float8,
            "text" | "character varying" => PgType::Text,
            "bytea" => PgType::Bytea,
            _ => return None,
        })
    }

    /// The type as PostgreSQL names it, for messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            PgType::Bool => "boolean",
            PgType::Int2 => "smallint",
            PgType::Int4 => "integer",
            PgType::Int8 => "bigint",
            PgType::Float4 => "real",
            PgType::Float8 => "double precision",
            PgType::Text => "text",
            PgType::Bytea => "bytea",
        }
    }
}

/// One column: its name and the type PostgreSQL gives it.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub name: String,
    pub ty: PgType,
}

/// One table to copy.
#[derive(Debug, Clone)]
pub(super) struct Table {
    pub name: String,
    /// In SQLite's declaration order.
    pub columns: Vec<Column>,
    /// Positions in `columns` of the primary key, in key order; rows are
    /// read in key order (rowid order when there is no key).
    pub key: Vec<usize>,
    /// Positions in `columns` of foreign keys into this same table.
    pub self_refs: Vec<usize>,
}

/// `name` quoted as an identifier (the same rules on both databases).
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables of the SQLite store, in an order in which PostgreSQL's foreign
/// keys accept their rows, after checking that both sides have the same
/// tables and columns.
pub(super) async fn discover(src: &mut SqliteConnection, dst: &mut PgConnection, target: &str) -> Result<Vec<Table>> {
    let sqlite = sqlite_tables(src)
        .await
        .map_err(|e| Error::CopyRefused(format!("reading the schema of the SQLite store: {e}")))?;
    let pg = pg_columns(dst)
        .await
        .map_err(|e| Error::CopyRefused(format!("reading the schema of {target}: {e}")))?;
    let foreign_keys = pg_foreign_keys(dst)
        .await
        .map_err(|e| Error::CopyRefused(format!("reading the foreign keys of {target}: {e}")))?;

    let mut problems = Vec::new();
    for name in pg.keys().filter(|t| !sqlite.contains_key(*t)) {
        problems.push(format!("table {name} is in PostgreSQL but not in the SQLite store"));
    }
    let mut tables = BTreeMap::new();
    for (name, (columns, key)) in &sqlite {
        let Some(pg_columns) = pg.get(name) else {
            problems.push(format!("table {name} is missing in PostgreSQL"));
            continue;
        };
        for c in pg_columns.keys().filter(|c| !columns.contains(c)) {
            problems.push(format!(
                "column {name}.{c} is in PostgreSQL but not in the SQLite store"
            ));
        }
        let mut typed = Vec::new();
        for column in columns {
            match pg_columns.get(column).map(|t| (t, PgType::parse(t))) {
                None => problems.push(format!("column {name}.{column} is missing in PostgreSQL")),
                Some((t, None)) => problems.push(format!(
                    "column {name}.{column} has PostgreSQL type {t}, which db copy does not convert to"
                )),
                Some((_, Some(ty))) => typed.push(Column {
                    name: column.clone(),
                    ty,
                }),
            }
        }
        let self_refs = foreign_keys
            .iter()
            .filter(|fk| fk.table == *name && fk.references == *name)
            .filter_map(|fk| columns.iter().position(|c| *c == fk.column))
            .collect();
        tables.insert(
            name.clone(),
            Table {
                name: name.clone(),
                columns: typed,
                key: key.clone(),
                self_refs,
            },
        );
    }
    if !problems.is_empty() {
        return Err(Error::CopyRefused(format!(
            "the schema of {target} does not match the SQLite store's, although both are at the current migration: {}",
            problems.join("; ")
        )));
    }
    let mut depends: BTreeMap<String, BTreeSet<String>> = tables.keys().map(|t| (t.clone(), BTreeSet::new())).collect();
    for fk in &foreign_keys {
        if fk.table != fk.references
            && tables.contains_key(&fk.references)
            && let Some(on) = depends.get_mut(&fk.table)
        {
            on.insert(fk.references.clone());
        }
    }
    let order = insert_order(&depends).map_err(|cycle| {
        Error::CopyRefused(format!(
            "the foreign keys of {target} form a cycle ({}): no insert order satisfies them",
            cycle.join(", ")
        ))
    })?;
    Ok(order.into_iter().filter_map(|t| tables.remove(&t)).collect())
}

/// Table → (column names in declaration order, primary-key positions).
type SqliteTables = BTreeMap<String, (Vec<String>, Vec<usize>)>;

/// The tables of the SQLite store that hold data, by name.
pub(super) async fn sqlite_table_names(src: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    // sqlite_* are SQLite's own; the migrations' bookkeeping is the
    // target's own business (its migrations ran before the copy).
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *src)
    .await
}

async fn sqlite_tables(src: &mut SqliteConnection) -> Result<SqliteTables, sqlx::Error> {
    let names = sqlite_table_names(src).await?;
    let mut tables = BTreeMap::new();
    for name in names {
        let rows = sqlx::query("SELECT name, pk FROM pragma_table_info($1) ORDER BY cid")
            .bind(&name)
            .fetch_all(&mut *src)
            .await?;
        let columns: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
        // pk is the column's 1-based position in the key, 0 outside it.
        let mut key: Vec<(i64, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.get::<i64, _>("pk"), i))
            .filter(|(pk, _)| *pk > 0)
            .collect();
        key.sort();
        tables.insert(name, (columns, key.into_iter().map(|(_, i)| i).collect()));
    }
    Ok(tables)
}

/// Table → column → `data_type`, for the base tables of the current schema.
async fn pg_columns(dst: &mut PgConnection) -> Result<BTreeMap<String, BTreeMap<String, String>>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text
         FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *dst)
    .await?;
    let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (table, column, ty) in rows {
        if crate::store::POSTGRES_ONLY_TABLES.contains(&table.as_str()) {
            continue;
        }
        tables.entry(table).or_default().insert(column, ty);
    }
    Ok(tables)
}

/// One column of a foreign key the target enforces.
struct ForeignKey {
    table: String,
    column: String,
    references: String,
}

async fn pg_foreign_keys(dst: &mut PgConnection) -> Result<Vec<ForeignKey>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, a.attname::text, r.relname::text
         FROM pg_constraint k
         JOIN pg_class t ON t.oid = k.conrelid
         JOIN pg_class r ON r.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *dst)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(table, column, references)| ForeignKey {
            table,
            column,
            references,
        })
        .collect())
}

/// The tables ordered so that each comes after those it refers to (ties by
/// name, so the order is stable); `Err` with the tables caught in a cycle.
pub(super) fn insert_order(depends: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>, Vec<String>> {
    let mut done: BTreeSet<&String> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < depends.len() {
        let next = depends
            .iter()
            .find(|(t, on)| !done.contains(t) && on.iter().all(|d| done.contains(d) || !depends.contains_key(d)));
        match next {
            Some((t, _)) => {
                done.insert(t);
                order.push(t.clone());
            }
            None => return Err(depends.keys().filter(|t| !done.contains(t)).cloned().collect()),
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{PgType, ident, insert_order};

    fn deps(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(t, on)| (t.to_string(), on.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn referenced_tables_come_first() {
        let order = insert_order(&deps(&[
            ("messages", &["tickets", "contacts"]),
            ("tickets", &["contacts", "accounts"]),
            ("contacts", &["accounts"]),
            ("accounts", &[]),
            ("attachments", &["messages"]),
        ]))
        .unwrap();
        assert_eq!(order, ["accounts", "contacts", "tickets", "messages", "attachments"]);
    }

    #[test]
    fn a_cycle_is_named() {
        let err = insert_order(&deps(&[("a", &["b"]), ("b", &["a"]), ("c", &[])])).unwrap_err();
        assert_eq!(err, ["a", "b"]);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("ignore"), "\"ignore\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn only_known_types_are_filled() {
        assert_eq!(PgType::parse("boolean"), Some(PgType::Bool));
        assert_eq!(PgType::parse("bigint"), Some(PgType::Int8));
        assert_eq!(PgType::parse("bytea"), Some(PgType::Bytea));
        assert_eq!(PgType::parse("timestamp with time zone"), None);
    }
}
