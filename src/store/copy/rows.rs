//! Moving one table's rows: read from SQLite as stored, convert each value
//! to the PostgreSQL column's type, insert in multi-row statements.
//!
//! SQLite types values, not columns, so every value is checked against the
//! column it goes to, and anything that PostgreSQL would store differently
//! from what SQLite holds (a flag of 2, text with a NUL character, text
//! that is not UTF-8) stops the copy with the table, row and column named,
//! instead of being altered on the way.

use futures_util::TryStreamExt as _;
use sqlx::postgres::Postgres;
use sqlx::query_builder::Separated;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, PgConnection, QueryBuilder, Row as _, SqliteConnection, TypeInfo as _, ValueRef as _};

use super::failed;
use super::schema::{PgType, Table, ident};
use crate::error::Result;

/// PostgreSQL's limit of bind parameters in one statement (the protocol
/// counts them in 16 bits).
const MAX_BIND_PARAMS: usize = 65_535;

/// A value as SQLite stored it (one of its storage classes; NULL is `None`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stored {
    Integer(i64),
    Real(f64),
    /// Bytes as stored: SQLite does not check that TEXT is UTF-8.
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// A value typed for its PostgreSQL column. NULLs carry the column's type
/// too: PostgreSQL refuses a parameter typed BIGINT for a BOOLEAN column,
/// even when it is NULL.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Bool(Option<bool>),
    Int2(Option<i16>),
    Int4(Option<i32>),
    Int8(Option<i64>),
    Float4(Option<f32>),
    Float8(Option<f64>),
    Text(Option<String>),
    Bytea(Option<Vec<u8>>),
}

impl Value {
    /// NULL of type `ty`.
    pub(super) fn null(ty: PgType) -> Value {
        match ty {
            PgType::Bool => Value::Bool(None),
            PgType::Int2 => Value::Int2(None),
            PgType::Int4 => Value::Int4(None),
            PgType::Int8 => Value::Int8(None),
            PgType::Float4 => Value::Float4(None),
            PgType::Float8 => Value::Float8(None),
            PgType::Text => Value::Text(None),
            PgType::Bytea => Value::Bytea(None),
        }
    }

    fn is_null(&self) -> bool {
        *self == Value::null(self.ty())
    }

    fn ty(&self) -> PgType {
        match self {
            Value::Bool(_) => PgType::Bool,
            Value::Int2(_) => PgType::Int2,
            Value::Int4(_) => PgType::Int4,
            Value::Int8(_) => PgType::Int8,
            Value::Float4(_) => PgType::Float4,
            Value::Float8(_) => PgType::Float8,
            Value::Text(_) => PgType::Text,
            Value::Bytea(_) => PgType::Bytea,
        }
    }

    /// Roughly what the value weighs in a statement, so that a chunk of
    /// large mails stays within the byte budget.
    fn size(&self) -> usize {
        match self {
            Value::Text(Some(s)) => s.len(),
            Value::Bytea(Some(b)) => b.len(),
            _ => 8,
        }
    }

    fn bind(self, b: &mut Separated<'_, Postgres, &'static str>) {
        match self {
            Value::Bool(v) => b.push_bind(v),
            Value::Int2(v) => b.push_bind(v),
            Value::Int4(v) => b.push_bind(v),
            Value::Int8(v) => b.push_bind(v),
            Value::Float4(v) => b.push_bind(v),
            Value::Float8(v) => b.push_bind(v),
            Value::Text(v) => b.push_bind(v),
            Value::Bytea(v) => b.push_bind(v),
        };
    }
}

/// `stored` as a value of PostgreSQL type `ty`, or why it cannot be one
/// without changing it.
pub(super) fn convert(stored: Option<Stored>, ty: PgType) -> Result<Value, String> {
    let Some(stored) = stored else {
        return Ok(Value::null(ty));
    };
    let out_of_range = |n: i64| format!("{n} does not fit PostgreSQL's {}", ty.name());
    let value = match (ty, stored) {
        // SQLite keeps flags as 0/1 in INTEGER columns.
        (PgType::Bool, Stored::Integer(0)) => Value::Bool(Some(false)),
        (PgType::Bool, Stored::Integer(1)) => Value::Bool(Some(true)),
        (PgType::Bool, Stored::Integer(n)) => return Err(format!("{n} is not a flag (0 or 1)")),
        (PgType::Int2, Stored::Integer(n)) => Value::Int2(Some(n.try_into().map_err(|_| out_of_range(n))?)),
        (PgType::Int4, Stored::Integer(n)) => Value::Int4(Some(n.try_into().map_err(|_| out_of_range(n))?)),
        (PgType::Int8, Stored::Integer(n)) => Value::Int8(Some(n)),
        (PgType::Float8, Stored::Real(x)) => Value::Float8(Some(x)),
        (PgType::Float8, Stored::Integer(n)) if n.unsigned_abs() <= 1 << 53 => Value::Float8(Some(n as f64)),
        (PgType::Float4, Stored::Real(x)) if f64::from(x as f32) == x => Value::Float4(Some(x as f32)),
        (PgType::Text, Stored::Text(bytes)) => {
            let text = String::from_utf8(bytes).map_err(|_| "the text is not valid UTF-8".to_string())?;
            if text.contains('\0') {
                return Err("the text holds a NUL character, which PostgreSQL text cannot store \
                     (`db copy --replace-nul` stores U+FFFD in its place)"
                    .into());
            }
            Value::Text(Some(text))
        }
        // A BLOB column keeps whatever was bound; text is its bytes.
        (PgType::Bytea, Stored::Blob(bytes) | Stored::Text(bytes)) => Value::Bytea(Some(bytes)),
        (ty, stored) => {
            return Err(format!(
                "SQLite holds {} where PostgreSQL's column is {}",
                describe(&stored),
                ty.name()
            ));
        }
    };
    Ok(value)
}

fn describe(stored: &Stored) -> String {
    match stored {
        Stored::Integer(n) => format!("the integer {n}"),
        Stored::Real(x) => format!("the real {x}"),
        Stored::Text(_) => "text".into(),
        Stored::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// Column `i` of `row` in the storage class SQLite gave that value.
fn read(row: &SqliteRow, i: usize) -> Result<Option<Stored>, sqlx::Error> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(None);
    }
    let class = raw.type_info().name().to_string();
    Ok(Some(match class.as_str() {
        "INTEGER" => Stored::Integer(row.try_get_unchecked(i)?),
        "REAL" => Stored::Real(row.try_get_unchecked(i)?),
        "TEXT" => Stored::Text(row.try_get_unchecked(i)?),
        _ => Stored::Blob(row.try_get_unchecked(i)?),
    }))
}

/// Which row a message is about: its key (`number=7`), else its rowid.
fn row_name(row: &SqliteRow, table: &Table) -> String {
    let key: Vec<String> = table
        .key
        .iter()
        .map(|&i| {
            let value = row.try_get_unchecked::<String, _>(i).unwrap_or_else(|_| "?".into());
            format!("{}={value}", table.columns[i].name)
        })
        .collect();
    if key.is_empty() {
        "without a key".into()
    } else {
        key.join(", ")
    }
}

/// How a table is copied: rows and bytes per INSERT at most, and whether
/// NUL characters in text become U+FFFD instead of stopping the copy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub rows: usize,
    pub bytes: usize,
    pub replace_nul: bool,
}

/// What [`copy_table`] did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Copied {
    pub rows: u64,
    /// Text values whose NUL characters became U+FFFD.
    pub nul_replaced: u64,
}

/// Replaces every NUL byte of UTF-8 `text` by U+FFFD (a NUL byte is always
/// the character U+0000 in UTF-8); tells whether there was one.
pub(super) fn replace_nul(text: &mut Vec<u8>) -> bool {
    if !text.contains(&0) {
        return false;
    }
    let mut out = Vec::with_capacity(text.len() + 8);
    for &b in text.iter() {
        if b == 0 {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        } else {
            out.push(b);
        }
    }
    *text = out;
    true
}

/// Copies every row of `table` from `src` to `dst` (both inside their
/// transactions); says how many rows were inserted.
///
/// Columns referring back into the same table (`tickets.related_ticket`)
/// are inserted as NULL and filled in once every row exists: PostgreSQL
/// checks a foreign key at the end of each statement, and a row may refer
/// to one that a later chunk inserts.
pub(super) async fn copy_table(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
    table: &Table,
    plan: Plan,
) -> Result<Copied> {
    let columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
    let order: Vec<String> = table.key.iter().map(|&i| columns[i].clone()).collect();
    let order = if order.is_empty() {
        "rowid".into()
    } else {
        order.join(", ")
    };
    let select = format!(
        "SELECT {} FROM {} ORDER BY {order}",
        columns.join(", "),
        ident(&table.name)
    );
    let insert = format!(
        // Ids are copied as they are, identity columns included.
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE ",
        ident(&table.name),
        columns.join(", ")
    );
    let per_insert = plan.rows.min(MAX_BIND_PARAMS / columns.len()).max(1);

    let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(&mut *src);
    let mut batch: Vec<Vec<Value>> = Vec::new();
    let mut batch_bytes = 0;
    let mut copied = Copied::default();
    let mut deferred: Vec<Vec<Value>> = Vec::new();
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| failed(format!("reading table {} from the SQLite store: {e}", table.name)))?
    {
        let mut values = Vec::with_capacity(columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            let value = read(&row, i).map_err(|e| e.to_string()).and_then(|mut v| {
                if let Some(Stored::Text(text)) = &mut v
                    && plan.replace_nul
                    && column.ty == PgType::Text
                    && replace_nul(text)
                {
                    copied.nul_replaced += 1;
                }
                convert(v, column.ty)
            });
            values.push(value.map_err(|why| {
                failed(format!(
                    "table {}, row {}, column {}: {why}",
                    table.name,
                    row_name(&row, table),
                    column.name
                ))
            })?);
        }
        if !table.self_refs.is_empty() {
            let mut later: Vec<Value> = table.key.iter().map(|&i| values[i].clone()).collect();
            for &i in &table.self_refs {
                later.push(std::mem::replace(&mut values[i], Value::null(table.columns[i].ty)));
            }
            if later[table.key.len()..].iter().any(|v| !v.is_null()) {
                deferred.push(later);
            }
        }
        // The values are copies: the row's own bytes need not live through the insert.
        drop(row);
        let size = values.iter().map(Value::size).sum::<usize>();
        // A row that would take the chunk over its budget starts the next
        // one, so a chunk of large mails is at most one of them over it.
        if !batch.is_empty() && batch_bytes + size > plan.bytes {
            copied.rows += insert_rows(dst, &insert, &mut batch, table).await?;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(values);
        if batch.len() >= per_insert || batch_bytes >= plan.bytes {
            copied.rows += insert_rows(dst, &insert, &mut batch, table).await?;
            batch_bytes = 0;
        }
    }
    drop(rows);
    if !batch.is_empty() {
        copied.rows += insert_rows(dst, &insert, &mut batch, table).await?;
    }
    if !deferred.is_empty() {
        fill_self_references(dst, table, deferred, plan).await?;
    }
    Ok(copied)
}

async fn insert_rows(dst: &mut PgConnection, insert: &str, batch: &mut Vec<Vec<Value>>, table: &Table) -> Result<u64> {
    let mut qb = QueryBuilder::<Postgres>::new(insert);
    qb.push_values(batch.drain(..), |mut b, row| {
        for value in row {
            value.bind(&mut b);
        }
    });
    let done = qb
        .build()
        .execute(&mut *dst)
        .await
        .map_err(|e| failed(format!("inserting into {}: {e}", table.name)))?;
    Ok(done.rows_affected())
}

/// Sets the self-referencing columns of the rows in `deferred` (each: key
/// values, then those columns' values) with `UPDATE ... FROM (VALUES ...)`.
async fn fill_self_references(
    dst: &mut PgConnection,
    table: &Table,
    deferred: Vec<Vec<Value>>,
    plan: Plan,
) -> Result<()> {
    if table.key.is_empty() {
        return Err(failed(format!(
            "table {} refers to itself but has no primary key to fill those references in by",
            table.name
        )));
    }
    let name = ident(&table.name);
    let keys: Vec<String> = (0..table.key.len()).map(|i| format!("k{i}")).collect();
    let refs: Vec<String> = (0..table.self_refs.len()).map(|i| format!("r{i}")).collect();
    let set: Vec<String> = table
        .self_refs
        .iter()
        .zip(&refs)
        .map(|(&c, r)| format!("{} = v.{r}", ident(&table.columns[c].name)))
        .collect();
    let matches: Vec<String> = table
        .key
        .iter()
        .zip(&keys)
        .map(|(&c, k)| format!("{name}.{} = v.{k}", ident(&table.columns[c].name)))
        .collect();
    let width = keys.len() + refs.len();
    let per_update = plan.rows.min(MAX_BIND_PARAMS / width).max(1);
    for rows in deferred.chunks(per_update) {
        let mut qb = QueryBuilder::<Postgres>::new(format!("UPDATE {name} SET {} FROM (", set.join(", ")));
        qb.push_values(rows.iter().cloned(), |mut b, row| {
            for value in row {
                value.bind(&mut b);
            }
        });
        qb.push(format!(
            ") AS v ({}, {}) WHERE {}",
            keys.join(", "),
            refs.join(", "),
            matches.join(" AND ")
        ));
        let done = qb
            .build()
            .execute(&mut *dst)
            .await
            .map_err(|e| failed(format!("filling in the references of {} to itself: {e}", table.name)))?;
        if done.rows_affected() != rows.len() as u64 {
            return Err(failed(format!(
                "filling in the references of {} to itself: {} of {} rows found",
                table.name,
                done.rows_affected(),
                rows.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PgType, Stored, Value, convert, replace_nul};

    #[test]
    fn flags_become_booleans_and_only_0_and_1_are_flags() {
        assert_eq!(
            convert(Some(Stored::Integer(0)), PgType::Bool),
            Ok(Value::Bool(Some(false)))
        );
        assert_eq!(
            convert(Some(Stored::Integer(1)), PgType::Bool),
            Ok(Value::Bool(Some(true)))
        );
        assert!(
            convert(Some(Stored::Integer(2)), PgType::Bool)
                .unwrap_err()
                .contains("not a flag")
        );
        assert!(convert(Some(Stored::Text(b"1".to_vec())), PgType::Bool).is_err());
    }

    #[test]
    fn nulls_keep_the_column_type() {
        assert_eq!(convert(None, PgType::Bool), Ok(Value::Bool(None)));
        assert_eq!(convert(None, PgType::Bytea), Ok(Value::Bytea(None)));
        assert_eq!(convert(None, PgType::Int8), Ok(Value::Int8(None)));
    }

    #[test]
    fn integers_must_fit_and_keep_their_class() {
        let big = i64::from(i32::MAX) + 1;
        assert_eq!(
            convert(Some(Stored::Integer(big)), PgType::Int8),
            Ok(Value::Int8(Some(big)))
        );
        assert!(convert(Some(Stored::Integer(big)), PgType::Int4).is_err());
        assert_eq!(
            convert(Some(Stored::Integer(7)), PgType::Int2),
            Ok(Value::Int2(Some(7)))
        );
        // SQLite lets text into an INTEGER column; PostgreSQL would need it changed.
        assert!(convert(Some(Stored::Text(b"abc".to_vec())), PgType::Int8).is_err());
        assert!(convert(Some(Stored::Real(1.5)), PgType::Int8).is_err());
        assert_eq!(
            convert(Some(Stored::Integer(3)), PgType::Float8),
            Ok(Value::Float8(Some(3.0)))
        );
    }

    #[test]
    fn bytes_are_copied_as_they_are() {
        let raw: Vec<u8> = (0..=255).collect();
        assert_eq!(
            convert(Some(Stored::Blob(raw.clone())), PgType::Bytea),
            Ok(Value::Bytea(Some(raw)))
        );
        assert_eq!(
            convert(Some(Stored::Text(b"From: a".to_vec())), PgType::Bytea),
            Ok(Value::Bytea(Some(b"From: a".to_vec())))
        );
    }

    #[test]
    fn text_postgresql_cannot_hold_is_refused_not_changed() {
        assert_eq!(
            convert(Some(Stored::Text("Dobrý deň".as_bytes().to_vec())), PgType::Text),
            Ok(Value::Text(Some("Dobrý deň".into())))
        );
        assert!(
            convert(Some(Stored::Text(b"a\0b".to_vec())), PgType::Text)
                .unwrap_err()
                .contains("NUL")
        );
        assert!(
            convert(Some(Stored::Text(vec![0xff, 0xfe])), PgType::Text)
                .unwrap_err()
                .contains("UTF-8")
        );
        assert!(
            convert(Some(Stored::Blob(b"x".to_vec())), PgType::Text)
                .unwrap_err()
                .contains("blob")
        );
        assert!(convert(Some(Stored::Integer(5)), PgType::Text).is_err());
    }

    #[test]
    fn nul_characters_can_become_replacement_characters() {
        let mut text = b"hello\0world\0".to_vec();
        assert!(replace_nul(&mut text));
        assert_eq!(String::from_utf8(text).unwrap(), "hello\u{FFFD}world\u{FFFD}");
        let mut clean = "Dobrý deň".as_bytes().to_vec();
        assert!(!replace_nul(&mut clean));
        assert_eq!(clean, "Dobrý deň".as_bytes());
    }
}
