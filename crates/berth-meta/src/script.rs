//! Scripts: several SQL statements that share one numbering of parameters (`$1` is the same
//! value in every statement that uses it), run in order on one connection, their rows
//! collected.
//!
//! On SQLite a script is one query: sqlx-sqlite runs every statement of a query with the shared
//! arguments, in one round trip to the connection's worker thread (see `crate::writer` on round
//! trips). PostgreSQL's extended protocol refuses several commands in one prepared statement, so
//! there the script is split into its statements and each runs on its own, with the parameters
//! it uses renumbered `$1..$k` and only those bound (one round trip per statement). The text is
//! split at `;` outside quotes; scripts hold no `;` inside literals, identifiers or comments
//! other than quoted ones.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{AnyConnection, Arguments, AssertSqlSafe};

use crate::MetaError;

/// The name sqlx's `Any` driver gives a PostgreSQL connection (`AnyConnection::backend_name`).
pub(crate) const POSTGRES: &str = "PostgreSQL";

/// Whether `conn` is a PostgreSQL connection.
pub(crate) fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name() == POSTGRES
}

/// A bound value of a script. Booleans are [`Value::I64`] 0/1 (PostgreSQL will not compare a
/// boolean parameter with a BIGINT column); a NULL keeps its type, so that PostgreSQL can type
/// the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A BIGINT.
    I64(i64),
    /// A TEXT.
    Text(String),
    /// A BLOB (SQLite) / BYTEA (PostgreSQL).
    Bytes(Vec<u8>),
    /// A NULL BIGINT.
    NullI64,
    /// A NULL TEXT.
    NullText,
    /// A NULL BLOB / BYTEA.
    NullBytes,
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::I64(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Text(value)
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Value {
        Value::Bytes(value)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Value {
        Value::Bytes(value.to_vec())
    }
}

impl From<Option<&str>> for Value {
    fn from(value: Option<&str>) -> Value {
        value.map_or(Value::NullText, Value::from)
    }
}

impl From<Option<Vec<u8>>> for Value {
    fn from(value: Option<Vec<u8>>) -> Value {
        value.map_or(Value::NullBytes, Value::Bytes)
    }
}

impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Value {
        value.map_or(Value::NullI64, Value::I64)
    }
}

impl Value {
    fn add_to(self, arguments: &mut AnyArguments) -> Result<(), MetaError> {
        let added = match self {
            Value::I64(value) => arguments.add(value),
            Value::Text(value) => arguments.add(value),
            Value::Bytes(value) => arguments.add(value),
            Value::NullI64 => arguments.add(None::<i64>),
            Value::NullText => arguments.add(None::<String>),
            Value::NullBytes => arguments.add(None::<Vec<u8>>),
        };
        added.map_err(|error| MetaError::Database(sqlx::Error::Encode(error)))
    }
}

/// A script: statements separated by `;` with `$N` parameters shared by all of them, and the
/// values of `$1`, `$2`, … in order (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Script {
    sql: String,
    values: Vec<Value>,
}

impl Script {
    /// A script of `sql` with no values bound yet.
    pub(crate) fn new(sql: impl Into<String>) -> Script {
        Script {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Into<Value>) -> Script {
        self.values.push(value.into());
        self
    }

    /// Runs the script on `conn` and returns the rows of all its statements, in order.
    ///
    /// Errors: [`MetaError::Database`] from the first statement that fails (on PostgreSQL the
    /// statements before it have run: the caller's transaction is then to be rolled back, as
    /// on SQLite).
    pub(crate) async fn fetch_all(self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>, MetaError> {
        if !is_postgres(conn) {
            let mut arguments = AnyArguments::default();
            for value in self.values {
                value.add_to(&mut arguments)?;
            }
            return Ok(sqlx::query_with(AssertSqlSafe(self.sql), arguments)
                .fetch_all(&mut *conn)
                .await?);
        }
        let statements = split(&self.sql);
        // How many statements still need each value: the last one takes it, the others clone.
        let mut uses = vec![0usize; self.values.len()];
        for statement in &statements {
            for &number in &statement.parameters {
                if let Some(count) = uses.get_mut(number - 1) {
                    *count += 1;
                }
            }
        }
        let mut values: Vec<Option<Value>> = self.values.into_iter().map(Some).collect();
        let mut rows = Vec::new();
        for statement in statements {
            let mut arguments = AnyArguments::default();
            for number in statement.parameters {
                let index = number - 1;
                let value = match (uses.get_mut(index), values.get_mut(index)) {
                    (Some(count), Some(slot)) => {
                        *count -= 1;
                        if *count == 0 { slot.take() } else { slot.clone() }
                    }
                    _ => None,
                };
                let Some(value) = value else {
                    return Err(MetaError::Database(sqlx::Error::Protocol(format!(
                        "script parameter ${number} has no value"
                    ))));
                };
                value.add_to(&mut arguments)?;
            }
            rows.extend(
                sqlx::query_with(AssertSqlSafe(statement.sql), arguments)
                    .fetch_all(&mut *conn)
                    .await?,
            );
        }
        Ok(rows)
    }
}

/// One statement of a split script: its text with parameters renumbered from `$1`, and the
/// script's parameter number behind each new number (`parameters[k - 1]` is the old number of
/// `$k`).
#[derive(Debug, PartialEq, Eq)]
struct Statement {
    sql: String,
    parameters: Vec<usize>,
}

/// Splits `sql` at `;` outside quotes (`'…'`, `"…"`), dropping empty statements, and renumbers
/// each statement's parameters in order of first use.
fn split(sql: &str) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut current = Statement {
        sql: String::new(),
        parameters: Vec::new(),
    };
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.sql.push(c);
            }
            (Some(_), c) => current.sql.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.sql.push(c);
            }
            (None, ';') => {
                finish(&mut statements, &mut current);
            }
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut number = 0usize;
                while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
                    number = number * 10 + digit as usize;
                    chars.next();
                }
                let renumbered = match current.parameters.iter().position(|&n| n == number) {
                    Some(position) => position + 1,
                    None => {
                        current.parameters.push(number);
                        current.parameters.len()
                    }
                };
                current.sql.push('$');
                current.sql.push_str(&renumbered.to_string());
            }
            (None, c) => current.sql.push(c),
        }
    }
    finish(&mut statements, &mut current);
    statements
}

/// Ends the statement being built: kept when it holds more than blanks.
fn finish(statements: &mut Vec<Statement>, current: &mut Statement) {
    let statement = std::mem::replace(
        current,
        Statement {
            sql: String::new(),
            parameters: Vec::new(),
        },
    );
    if !statement.sql.trim().is_empty() {
        statements.push(Statement {
            sql: statement.sql.trim().to_owned(),
            parameters: statement.parameters,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_and_renumbered_in_order_of_use() {
        let statements = split("INSERT INTO a VALUES ($3, $1); SELECT $3, ';', $12 FROM b WHERE c = $3 ; ");
        assert_eq!(
            statements,
            vec![
                Statement {
                    sql: "INSERT INTO a VALUES ($1, $2)".to_owned(),
                    parameters: vec![3, 1],
                },
                Statement {
                    sql: "SELECT $1, ';', $2 FROM b WHERE c = $1".to_owned(),
                    parameters: vec![3, 12],
                },
            ]
        );
    }

    #[test]
    fn quotes_protect_semicolons_and_dollars() {
        let statements = split("SELECT 'a;$1' AS \"x;y\", $2 WHERE n NOT LIKE '%/%'");
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0].sql, "SELECT 'a;$1' AS \"x;y\", $1 WHERE n NOT LIKE '%/%'");
        assert_eq!(statements[0].parameters, vec![2]);
    }

    #[test]
    fn a_statement_without_parameters_binds_nothing() {
        let statements = split("DELETE FROM t;;");
        assert_eq!(
            statements,
            vec![Statement {
                sql: "DELETE FROM t".to_owned(),
                parameters: vec![],
            }]
        );
    }
}
