//! Choice rules: comparisons (and their *Path forms), type tests, And/Or/Not.

use crate::path::Path;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Test {
        variable: Path,
        op: Op,
        operand: Operand,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(Value),
    /// The *Path comparators compare with another value of the input.
    Path(Path),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals(Kind),
    LessThan(Kind),
    GreaterThan(Kind),
    LessThanEquals(Kind),
    GreaterThanEquals(Kind),
    StringMatches,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

/// Comparator name → (operator, takes a path operand).
pub fn comparator(name: &str) -> Option<(Op, bool)> {
    let (base, is_path) = match name.strip_suffix("Path") {
        Some(b) if !matches!(name, "IsNull" | "IsPresent") => (b, true),
        _ => (name, false),
    };
    let kinds = [
        ("String", Kind::String),
        ("Numeric", Kind::Numeric),
        ("Boolean", Kind::Boolean),
        ("Timestamp", Kind::Timestamp),
    ];
    for (prefix, kind) in kinds {
        if let Some(rel) = base.strip_prefix(prefix) {
            let op = match rel {
                "Equals" => Op::Equals(kind),
                "LessThan" if kind != Kind::Boolean => Op::LessThan(kind),
                "GreaterThan" if kind != Kind::Boolean => Op::GreaterThan(kind),
                "LessThanEquals" if kind != Kind::Boolean => Op::LessThanEquals(kind),
                "GreaterThanEquals" if kind != Kind::Boolean => Op::GreaterThanEquals(kind),
                "Matches" if kind == Kind::String && !is_path => Op::StringMatches,
                _ => return None,
            };
            return Some((op, is_path));
        }
    }
    if is_path {
        return None;
    }
    Some((
        match name {
            "IsNull" => Op::IsNull,
            "IsPresent" => Op::IsPresent,
            "IsNumeric" => Op::IsNumeric,
            "IsString" => Op::IsString,
            "IsBoolean" => Op::IsBoolean,
            "IsTimestamp" => Op::IsTimestamp,
            _ => return None,
        },
        false,
    ))
}

impl Op {
    /// What a literal operand must be.
    pub fn check_literal(&self, v: &Value) -> Result<(), String> {
        let ok = match self {
            Op::Equals(Kind::String)
            | Op::LessThan(Kind::String)
            | Op::GreaterThan(Kind::String)
            | Op::LessThanEquals(Kind::String)
            | Op::GreaterThanEquals(Kind::String)
            | Op::StringMatches => v.is_string(),
            Op::Equals(Kind::Numeric)
            | Op::LessThan(Kind::Numeric)
            | Op::GreaterThan(Kind::Numeric)
            | Op::LessThanEquals(Kind::Numeric)
            | Op::GreaterThanEquals(Kind::Numeric) => v.is_number(),
            Op::Equals(Kind::Timestamp)
            | Op::LessThan(Kind::Timestamp)
            | Op::GreaterThan(Kind::Timestamp)
            | Op::LessThanEquals(Kind::Timestamp)
            | Op::GreaterThanEquals(Kind::Timestamp) => v.as_str().and_then(timestamp).is_some(),
            _ => v.is_boolean(),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{v} is not a valid operand for this comparison"))
        }
    }
}

/// RFC 3339 with an uppercase `T` and `Z`, as Step Functions requires.
pub fn timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    if s.contains('t') || s.contains('z') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .filter(|_| s.contains('T'))
}

/// `*` matches any run of characters; `\*` is a literal star, `\\` a
/// backslash.
pub fn string_matches(value: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Char(char),
        Star,
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => toks.push(Tok::Char(chars.next().unwrap_or('\\'))),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Char(c)),
        }
    }
    let v: Vec<char> = value.chars().collect();
    // Classic greedy wildcard matching with backtracking to the last star.
    let (mut i, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < v.len() {
        match toks.get(t) {
            Some(Tok::Char(c)) if *c == v[i] => {
                i += 1;
                t += 1;
            }
            Some(Tok::Star) => {
                star = Some((t, i));
                t += 1;
            }
            _ => match star {
                Some((st, si)) => {
                    t = st + 1;
                    i = si + 1;
                    star = Some((st, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[t..].iter().all(|x| *x == Tok::Star)
}

/// A Choice that reads a path that is not there fails the execution, except
/// for IsPresent, whose job is to ask.
#[derive(Debug)]
pub struct MissingVariable(pub String);

impl Condition {
    pub fn evaluate(&self, input: &Value, context: &Value) -> Result<bool, MissingVariable> {
        match self {
            Condition::And(all) => {
                for c in all {
                    if !c.evaluate(input, context)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Or(any) => {
                for c in any {
                    if c.evaluate(input, context)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(c) => Ok(!c.evaluate(input, context)?),
            Condition::Test {
                variable,
                op,
                operand,
            } => {
                let value = variable.select(input, context);
                if *op == Op::IsPresent {
                    let present = value.is_some();
                    return Ok(present == (operand == &Operand::Value(Value::Bool(true))));
                }
                let value = value.ok_or_else(|| MissingVariable(variable.text().to_string()))?;
                let expected = match operand {
                    Operand::Value(v) => v.clone(),
                    Operand::Path(p) => p
                        .select(input, context)
                        .ok_or_else(|| MissingVariable(p.text().to_string()))?,
                };
                Ok(test(*op, &value, &expected))
            }
        }
    }
}

fn test(op: Op, value: &Value, expected: &Value) -> bool {
    use std::cmp::Ordering;
    let flag = expected.as_bool() == Some(true);
    let ordering = |kind: Kind| -> Option<Ordering> {
        match kind {
            Kind::String => Some(value.as_str()?.cmp(expected.as_str()?)),
            Kind::Numeric => value.as_f64()?.partial_cmp(&expected.as_f64()?),
            Kind::Boolean => Some(value.as_bool()?.cmp(&expected.as_bool()?)),
            Kind::Timestamp => {
                Some(timestamp(value.as_str()?)?.cmp(&timestamp(expected.as_str()?)?))
            }
        }
    };
    match op {
        Op::Equals(k) => ordering(k) == Some(Ordering::Equal),
        Op::LessThan(k) => ordering(k) == Some(Ordering::Less),
        Op::GreaterThan(k) => ordering(k) == Some(Ordering::Greater),
        Op::LessThanEquals(k) => matches!(ordering(k), Some(Ordering::Less | Ordering::Equal)),
        Op::GreaterThanEquals(k) => {
            matches!(ordering(k), Some(Ordering::Greater | Ordering::Equal))
        }
        Op::StringMatches => value
            .as_str()
            .zip(expected.as_str())
            .is_some_and(|(v, p)| string_matches(v, p)),
        Op::IsNull => value.is_null() == flag,
        Op::IsNumeric => value.is_number() == flag,
        Op::IsString => value.is_string() == flag,
        Op::IsBoolean => value.is_boolean() == flag,
        Op::IsTimestamp => value.as_str().and_then(timestamp).is_some() == flag,
        Op::IsPresent => unreachable!("handled by the caller"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_escapes() {
        assert!(string_matches("log-2024-01.txt", "log-*.txt"));
        assert!(string_matches("abc", "*"));
        assert!(string_matches("", "*"));
        assert!(!string_matches("log.txt", "log-*.txt"));
        assert!(string_matches("a*b", r"a\*b"));
        assert!(!string_matches("axb", r"a\*b"));
        assert!(string_matches(r"a\b", r"a\\b"));
        assert!(string_matches("aaa-bbb-ccc", "*-*-c*"));
    }

    #[test]
    fn timestamps_follow_the_step_functions_profile() {
        assert!(timestamp("2016-03-14T01:59:00Z").is_some());
        assert!(timestamp("2016-03-14T01:59:00.123+02:00").is_some());
        assert!(timestamp("2016-03-14t01:59:00Z").is_none());
        assert!(timestamp("2016-03-14T01:59:00z").is_none());
        assert!(timestamp("2016-03-14 01:59:00Z").is_none());
        assert!(timestamp("2016-03-14").is_none());
    }

    #[test]
    fn comparator_names() {
        assert_eq!(
            comparator("NumericLessThanEqualsPath"),
            Some((Op::LessThanEquals(Kind::Numeric), true))
        );
        assert_eq!(comparator("IsPresent"), Some((Op::IsPresent, false)));
        assert_eq!(
            comparator("StringMatches"),
            Some((Op::StringMatches, false))
        );
        assert_eq!(comparator("StringMatchesPath"), None);
        assert_eq!(comparator("BooleanLessThan"), None);
        assert_eq!(comparator("NumericEqual"), None);
    }
}
