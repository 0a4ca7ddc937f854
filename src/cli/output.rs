//! Printing command results: aligned columns for people, JSON for scripts.
//!
//! Every list command goes through [`print_list`], so `--json` means the same
//! thing everywhere: one array of objects with the documented fields.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Prints rows as a JSON array or as a table of `columns`.
pub fn print_list<T: Serialize>(rows: &[T], json: bool, columns: &[&str]) -> Result<()> {
    if json {
        return print_json(&rows);
    }
    let values: Vec<Value> = rows.iter().map(to_value).collect::<Result<_>>()?;
    let cells: Vec<Vec<String>> = values
        .iter()
        .map(|v| columns.iter().map(|c| cell(v.get(*c))).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count()).min(60);
        }
    }
    let line = |items: Vec<String>| {
        items
            .iter()
            .zip(&widths)
            .map(|(s, w)| {
                let s: String = s.chars().take(*w).collect();
                format!("{s:<w$}")
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(columns.iter().map(|c| c.to_uppercase()).collect()));
    for row in cells {
        println!("{}", line(row));
    }
    Ok(())
}

/// Prints one value as pretty JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Usage(format!("cannot print JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Prints one object as `key: value` lines.
pub fn print_object<T: Serialize>(value: &T, json: bool) -> Result<()> {
    if json {
        return print_json(value);
    }
    if let Value::Object(map) = to_value(value)? {
        let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in &map {
            if !v.is_array() {
                println!("{k:<width$}  {}", cell(Some(v)));
            }
        }
    }
    Ok(())
}

fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Usage(format!("cannot print: {e}")))
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.replace(['\n', '\r', '\t'], " "),
        Some(Value::Array(a)) => a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}
