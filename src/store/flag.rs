//! Yes/no columns read the same on both engines.
//!
//! PostgreSQL has BOOLEAN; SQLite stores the same column as 0/1, and sqlx's
//! `Any` driver hands that back as an integer, which `bool` refuses to
//! decode. [`Flag`] accepts either, so a flag column (or an expression like
//! `released_at IS NOT NULL`) is read with one line of code for both.

use sqlx::any::{Any, AnyTypeInfo, AnyTypeInfoKind, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::{Decode, Row, Type};

use crate::error::Result;

/// A boolean read from either engine; `#[sqlx(try_from = "Flag")]` on a
/// `bool` field of a `FromRow` struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <bool as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        ty.kind() == AnyTypeInfoKind::Bool || ty.kind().is_integer()
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> std::result::Result<Self, BoxDynError> {
        match <bool as Decode<Any>>::decode(value.clone()) {
            Ok(b) => Ok(Flag(b)),
            Err(_) => Ok(Flag(<i64 as Decode<Any>>::decode(value)? != 0)),
        }
    }
}

/// Reads the flag column `name` of `row`.
pub(crate) fn flag(row: &sqlx::any::AnyRow, name: &str) -> Result<bool> {
    Ok(row.try_get::<Flag, _>(name)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// SQLite hands booleans back as integers; a plain `bool` would fail.
    #[tokio::test]
    async fn reads_sqlite_integers_and_expressions_as_flags() {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect("sqlite::memory:").await.unwrap();
        let row = sqlx::query("SELECT 1 AS yes, 0 AS no, (NULL IS NULL) AS expr")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(row.try_get::<bool, _>("yes").is_err(), "the problem Flag exists for");
        assert!(flag(&row, "yes").unwrap());
        assert!(!flag(&row, "no").unwrap());
        assert!(flag(&row, "expr").unwrap());
    }
}
