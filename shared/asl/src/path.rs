//! JSONPath as Step Functions uses it (the Jayway dialect), and reference
//! paths for ResultPath.
//!
//! A *definite* path (only names and indexes) yields the value itself —
//! `$.a[1].b` is the scalar — and fails when it matches nothing. An
//! *indefinite* path (wildcards, slices, unions, filters, `..`) always
//! yields an array, `[]` when nothing matches.

use serde_json::Value;
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} in path '{path}'")]
pub struct PathSyntaxError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    /// `..name` or `..*`
    Descendants(Option<String>),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Union(Vec<UnionItem>),
    Filter(Box<FilterExpr>),
}

#[derive(Debug, Clone, PartialEq)]
enum UnionItem {
    Field(String),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum FilterExpr {
    Or(Box<FilterExpr>, Box<FilterExpr>),
    And(Box<FilterExpr>, Box<FilterExpr>),
    Not(Box<FilterExpr>),
    /// `@.a` alone: the current item has that member (and it is not null,
    /// false or missing, as Jayway treats existence).
    Exists(Operand),
    Compare(Operand, CompareOp, Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Current(Vec<Segment>),
    Root(Vec<Segment>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed JSONPath, over the state input (`$`) or the context object (`$$`).
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    context: bool,
    segments: Vec<Segment>,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, PathSyntaxError> {
        let err = |message: &str| PathSyntaxError {
            path: text.to_string(),
            message: message.to_string(),
        };
        let (context, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (false, rest)
        } else {
            return Err(err(
                "a path must start with '$' (or '$$' for the context object)",
            ));
        };
        let mut parser = Parser {
            chars: rest.chars().collect(),
            at: 0,
        };
        let segments = parser.segments(false).map_err(|m| err(&m))?;
        if parser.at != parser.chars.len() {
            return Err(err(&format!(
                "unexpected '{}' at position {}",
                parser.chars[parser.at],
                parser.at + text.len() - rest.len()
            )));
        }
        Ok(Path {
            text: text.to_string(),
            context,
            segments,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_context(&self) -> bool {
        self.context
    }

    /// Only names and indexes: yields one value, not a list.
    pub fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// Evaluate against the state input and the context object. `None`: a
    /// definite path matched nothing.
    pub fn select(&self, input: &Value, context: &Value) -> Option<Value> {
        let root = if self.context { context } else { input };
        let found = select_all(&self.segments, root, root);
        if self.is_definite() {
            found.into_iter().next().cloned()
        } else {
            Some(Value::Array(found.into_iter().cloned().collect()))
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A path that names exactly one node of the input, for ResultPath.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferencePath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot place the result at '{path}': {message}")]
pub struct PlaceError {
    pub path: String,
    pub message: String,
}

impl ReferencePath {
    pub fn parse(text: &str) -> Result<ReferencePath, PathSyntaxError> {
        let path = Path::parse(text)?;
        if path.context {
            return Err(PathSyntaxError {
                path: text.into(),
                message: "a reference path cannot point into the context object ($$)".into(),
            });
        }
        let steps = path
            .segments
            .into_iter()
            .map(|s| match s {
                Segment::Field(f) => Ok(Step::Field(f)),
                Segment::Index(i) if i >= 0 => Ok(Step::Index(i)),
                _ => Err(PathSyntaxError {
                    path: text.into(),
                    message: "a reference path may only use names and non-negative indexes \
                              (no wildcards, slices, filters, unions or '..')"
                        .into(),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(ReferencePath {
            text: text.into(),
            steps,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Put `value` at this path inside `target`, creating missing objects on
    /// the way, as ResultPath does. Fails when the way is blocked by a value
    /// that is not an object (or an array index that does not exist).
    pub fn place(&self, target: &mut Value, value: Value) -> Result<(), PlaceError> {
        let mut node = target;
        for (i, step) in self.steps.iter().enumerate() {
            let blocked = |what: &str| PlaceError {
                path: self.text.clone(),
                message: format!("{what} (at step {})", i + 1),
            };
            node = match step {
                Step::Field(name) => match node {
                    Value::Object(map) => map
                        .entry(name.clone())
                        .or_insert(Value::Object(Default::default())),
                    other => {
                        return Err(blocked(&format!(
                            "the input there is {}, not an object",
                            type_name(other)
                        )))
                    }
                },
                Step::Index(ix) => match node {
                    Value::Array(items) => match items.get_mut(*ix as usize) {
                        Some(v) => v,
                        None => return Err(blocked(&format!("index {ix} is out of bounds"))),
                    },
                    other => {
                        return Err(blocked(&format!(
                            "the input there is {}, not an array",
                            type_name(other)
                        )))
                    }
                },
            };
        }
        *node = value;
        Ok(())
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn select_all<'v>(segments: &[Segment], node: &'v Value, root: &'v Value) -> Vec<&'v Value> {
    let mut current = vec![node];
    for seg in segments {
        let mut next = Vec::new();
        for v in current {
            apply(seg, v, root, &mut next);
        }
        current = next;
    }
    current
}

fn index_of(len: usize, i: i64) -> Option<usize> {
    let idx = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&idx).then_some(idx as usize)
}

fn apply<'v>(seg: &Segment, v: &'v Value, root: &'v Value, out: &mut Vec<&'v Value>) {
    match seg {
        Segment::Field(name) => {
            if let Some(x) = v.as_object().and_then(|m| m.get(name)) {
                out.push(x);
            }
        }
        Segment::Index(i) => {
            if let Some(items) = v.as_array() {
                if let Some(x) = index_of(items.len(), *i).map(|ix| &items[ix]) {
                    out.push(x);
                }
            }
        }
        Segment::Wildcard => match v {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Segment::Descendants(name) => descend(v, name.as_deref(), out),
        Segment::Slice(start, end, step) => {
            if let Some(items) = v.as_array() {
                slice(items, *start, *end, *step, out);
            }
        }
        Segment::Union(parts) => {
            for p in parts {
                match p {
                    UnionItem::Field(f) => apply(&Segment::Field(f.clone()), v, root, out),
                    UnionItem::Index(i) => apply(&Segment::Index(*i), v, root, out),
                }
            }
        }
        Segment::Filter(expr) => match v {
            Value::Array(items) => {
                out.extend(items.iter().filter(|item| filter_matches(expr, item, root)))
            }
            Value::Object(_) if filter_matches(expr, v, root) => out.push(v),
            _ => {}
        },
    }
}

fn descend<'v>(v: &'v Value, name: Option<&str>, out: &mut Vec<&'v Value>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if name.is_none_or(|n| n == k) {
                    out.push(child);
                }
            }
            for child in map.values() {
                descend(child, name, out);
            }
        }
        Value::Array(items) => {
            if name.is_none() {
                out.extend(items.iter());
            }
            for child in items {
                descend(child, name, out);
            }
        }
        _ => {}
    }
}

fn slice<'v>(
    items: &'v [Value],
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    out: &mut Vec<&'v Value>,
) {
    let len = items.len() as i64;
    let step = step.unwrap_or(1);
    if step == 0 {
        return;
    }
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    if step > 0 {
        let (mut i, e) = (norm(start.unwrap_or(0)), norm(end.unwrap_or(len)));
        while i < e {
            out.push(&items[i as usize]);
            i += step;
        }
    } else {
        let mut i = start.map_or(len - 1, |s| if s < 0 { len + s } else { s.min(len - 1) });
        let e = end.map_or(-1, |e| if e < 0 { (len + e).max(-1) } else { e });
        while i > e && i >= 0 {
            out.push(&items[i as usize]);
            i += step;
        }
    }
}

fn filter_matches(expr: &FilterExpr, item: &Value, root: &Value) -> bool {
    match expr {
        FilterExpr::Or(a, b) => filter_matches(a, item, root) || filter_matches(b, item, root),
        FilterExpr::And(a, b) => filter_matches(a, item, root) && filter_matches(b, item, root),
        FilterExpr::Not(a) => !filter_matches(a, item, root),
        FilterExpr::Exists(op) => operand(op, item, root).is_some(),
        FilterExpr::Compare(a, op, b) => {
            let (Some(a), Some(b)) = (operand(a, item, root), operand(b, item, root)) else {
                return false;
            };
            let ord = match (&a, &b) {
                (Value::Number(x), Value::Number(y)) => x
                    .as_f64()
                    .zip(y.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y)),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => None,
            };
            match op {
                CompareOp::Eq => ord.map_or(a == b, |o| o == Ordering::Equal),
                CompareOp::Ne => ord.map_or(a != b, |o| o != Ordering::Equal),
                CompareOp::Lt => ord == Some(Ordering::Less),
                CompareOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                CompareOp::Gt => ord == Some(Ordering::Greater),
                CompareOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            }
        }
    }
}

fn operand(op: &Operand, item: &Value, root: &Value) -> Option<Value> {
    match op {
        Operand::Literal(v) => Some(v.clone()),
        Operand::Current(segs) | Operand::Root(segs) => {
            let base = if matches!(op, Operand::Current(_)) {
                item
            } else {
                root
            };
            select_all(segs, base, root).into_iter().next().cloned()
        }
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }
    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.at + n).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// Segments until the end, or (inside a filter) until an operator.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                Some('.') if self.peek_at(1) == Some('.') => {
                    self.at += 2;
                    if self.eat('*') {
                        segs.push(Segment::Descendants(None));
                    } else {
                        let name = self.name()?;
                        segs.push(Segment::Descendants(Some(name)));
                    }
                }
                Some('.') => {
                    self.at += 1;
                    if self.eat('*') {
                        segs.push(Segment::Wildcard);
                    } else {
                        segs.push(Segment::Field(self.name()?));
                    }
                }
                Some('[') => {
                    self.at += 1;
                    segs.push(self.bracket()?);
                }
                None => break,
                Some(_) if in_filter => break,
                Some(c) => return Err(format!("expected '.' or '[' but found '{c}'")),
            }
        }
        Ok(segs)
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.at;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                '.' | '[' | ']' | '(' | ')' | ' ' | '=' | '!' | '<' | '>' | '&' | '|'
            ) {
                break;
            }
            self.at += 1;
        }
        if self.at == start {
            return Err(format!("empty field name at position {}", start + 1));
        }
        Ok(self.chars[start..self.at].iter().collect())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or("unterminated quoted name")?;
        self.at += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted name".into()),
                Some('\\') => {
                    self.at += 1;
                    s.push(self.peek().ok_or("unterminated escape")?);
                    self.at += 1;
                }
                Some(c) if c == quote => {
                    self.at += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.at;
        if self.peek() == Some('-') {
            self.at += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        if self.at == start {
            return Ok(None);
        }
        let text: String = self.chars[start..self.at].iter().collect();
        self.skip_ws();
        text.parse()
            .map(Some)
            .map_err(|_| format!("'{text}' is not an integer index"))
    }

    fn bracket(&mut self) -> Result<Segment, String> {
        self.skip_ws();
        let seg = match self.peek() {
            Some('*') => {
                self.at += 1;
                Segment::Wildcard
            }
            Some('\'') | Some('"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.eat(',') {
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Segment::Field(names.remove(0))
                } else {
                    Segment::Union(names.into_iter().map(UnionItem::Field).collect())
                }
            }
            Some('?') => {
                self.at += 1;
                if !self.eat('(') {
                    return Err("a filter is written [?(...)]".into());
                }
                let expr = self.filter_or()?;
                self.skip_ws();
                if !self.eat(')') {
                    return Err("missing ')' closing the filter".into());
                }
                Segment::Filter(Box::new(expr))
            }
            _ => {
                let first = self.int()?;
                if self.peek() == Some(':') {
                    self.at += 1;
                    let end = self.int()?;
                    let step = if self.eat(':') { self.int()? } else { None };
                    Segment::Slice(first, end, step)
                } else if self.peek() == Some(',') {
                    let mut items = vec![UnionItem::Index(first.ok_or("empty union member")?)];
                    while self.eat(',') {
                        items.push(UnionItem::Index(
                            self.int()?.ok_or("a union lists indexes or quoted names")?,
                        ));
                    }
                    Segment::Union(items)
                } else {
                    Segment::Index(first.ok_or(
                        "expected an index, '*', a slice, a quoted name or a filter inside []",
                    )?)
                }
            }
        };
        self.skip_ws();
        if !self.eat(']') {
            return Err("missing ']'".into());
        }
        Ok(seg)
    }

    fn filter_or(&mut self) -> Result<FilterExpr, String> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('|') && self.peek_at(1) == Some('|') {
                self.at += 2;
                left = FilterExpr::Or(Box::new(left), Box::new(self.filter_and()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_and(&mut self) -> Result<FilterExpr, String> {
        let mut left = self.filter_unary()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('&') && self.peek_at(1) == Some('&') {
                self.at += 2;
                left = FilterExpr::And(Box::new(left), Box::new(self.filter_unary()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_unary(&mut self) -> Result<FilterExpr, String> {
        self.skip_ws();
        if self.peek() == Some('!') && self.peek_at(1) != Some('=') {
            self.at += 1;
            return Ok(FilterExpr::Not(Box::new(self.filter_unary()?)));
        }
        if self.eat('(') {
            let e = self.filter_or()?;
            self.skip_ws();
            if !self.eat(')') {
                return Err("missing ')' in filter".into());
            }
            return Ok(e);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('=')) => Some((CompareOp::Eq, 2)),
            (Some('!'), Some('=')) => Some((CompareOp::Ne, 2)),
            (Some('<'), Some('=')) => Some((CompareOp::Le, 2)),
            (Some('>'), Some('=')) => Some((CompareOp::Ge, 2)),
            (Some('<'), _) => Some((CompareOp::Lt, 1)),
            (Some('>'), _) => Some((CompareOp::Gt, 1)),
            _ => None,
        };
        match op {
            Some((op, n)) => {
                self.at += n;
                let right = self.operand()?;
                Ok(FilterExpr::Compare(left, op, right))
            }
            None => match left {
                Operand::Literal(_) => Err("a filter needs a comparison or an @ path".into()),
                other => Ok(FilterExpr::Exists(other)),
            },
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some('@') => {
                self.at += 1;
                Ok(Operand::Current(self.segments(true)?))
            }
            Some('$') => {
                self.at += 1;
                Ok(Operand::Root(self.segments(true)?))
            }
            Some('\'') | Some('"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
                {
                    self.at += 1;
                }
                let word: String = self.chars[start..self.at].iter().collect();
                match word.as_str() {
                    "true" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" => Ok(Operand::Literal(Value::Null)),
                    _ => serde_json::from_str::<serde_json::Number>(&word)
                        .map(|n| Operand::Literal(Value::Number(n)))
                        .map_err(|_| format!("'{word}' is not a value a filter can compare")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, input: &Value) -> Option<Value> {
        Path::parse(path).unwrap().select(input, &json!({}))
    }

    fn store() -> Value {
        json!({"store": {"book": [
            {"category": "reference", "author": "Nigel Rees", "price": 8.95},
            {"category": "fiction", "author": "Evelyn Waugh", "price": 12.99},
            {"category": "fiction", "author": "Herman Melville", "isbn": "0-553-21311-3", "price": 8.99},
            {"category": "fiction", "author": "J. R. R. Tolkien", "isbn": "0-395-19395-8", "price": 22.99}
        ], "bicycle": {"color": "red", "price": 19.95}}, "a": [{"b": 1}, {"b": 2}]})
    }

    #[test]
    fn definite_paths_yield_the_value_itself() {
        let s = store();
        assert_eq!(sel("$.a[1].b", &s), Some(json!(2)));
        assert_eq!(sel("$['store']['bicycle'].color", &s), Some(json!("red")));
        assert_eq!(sel("$.a[-1].b", &s), Some(json!(2)));
        assert_eq!(sel("$", &json!(5)), Some(json!(5)));
        assert_eq!(sel("$.missing", &s), None);
        assert_eq!(sel("$.a[5]", &s), None);
    }

    #[test]
    fn indefinite_paths_yield_lists() {
        let s = store();
        assert_eq!(sel("$.a[*].b", &s), Some(json!([1, 2])));
        assert_eq!(
            sel("$.store.book[?(@.price < 10)].author", &s),
            Some(json!(["Nigel Rees", "Herman Melville"]))
        );
        assert_eq!(sel("$.store.book[?(@.price > 100)]", &s), Some(json!([])));
        assert_eq!(
            sel("$.store.book[?(@.isbn)].price", &s),
            Some(json!([8.99, 22.99]))
        );
        assert_eq!(
            sel(
                "$.store.book[?(@.category == 'fiction' && @.price < 20)].price",
                &s
            ),
            Some(json!([12.99, 8.99]))
        );
        assert_eq!(
            sel("$.store.book[1:3].price", &s),
            Some(json!([12.99, 8.99]))
        );
        assert_eq!(
            sel("$.store.book[-2:].price", &s),
            Some(json!([8.99, 22.99]))
        );
        assert_eq!(sel("$.store.book[:1].price", &s), Some(json!([8.95])));
        assert_eq!(
            sel("$.store.book[0,2].price", &s),
            Some(json!([8.95, 8.99]))
        );
        assert_eq!(
            sel("$..price", &s).unwrap().as_array().unwrap().len(),
            5,
            "four books and the bicycle"
        );
        assert_eq!(sel("$.nothing[*]", &s), Some(json!([])));
    }

    #[test]
    fn context_paths_read_the_context_object() {
        let p = Path::parse("$$.Map.Item.Index").unwrap();
        assert!(p.is_context());
        assert_eq!(
            p.select(&json!({}), &json!({"Map": {"Item": {"Index": 3}}})),
            Some(json!(3))
        );
    }

    #[test]
    fn malformed_paths_are_rejected_with_a_reason() {
        for bad in [
            "a.b",
            "$.",
            "$[",
            "$.a[?(@.x <)]",
            "$[1:2",
            "$.a b",
            "$..",
            "$[abc]",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn result_paths_create_objects_and_refuse_blocked_ways() {
        let mut v = json!({"a": 1});
        ReferencePath::parse("$.x.y.z")
            .unwrap()
            .place(&mut v, json!(true))
            .unwrap();
        assert_eq!(v, json!({"a": 1, "x": {"y": {"z": true}}}));
        let err = ReferencePath::parse("$.a.b")
            .unwrap()
            .place(&mut v, json!(1))
            .unwrap_err();
        assert!(err.message.contains("a number, not an object"), "{err}");
        let mut s = json!("text");
        ReferencePath::parse("$")
            .unwrap()
            .place(&mut s, json!({"r": 1}))
            .unwrap();
        assert_eq!(s, json!({"r": 1}));
        assert!(ReferencePath::parse("$.a[*]").is_err());
        assert!(ReferencePath::parse("$$.Execution").is_err());
    }

    /// Property: slices, negative indexes and filters agree with the same
    /// selection written in plain Rust, on generated arrays.
    #[test]
    fn slices_indexes_and_filters_agree_with_a_reference() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let len = (next() % 9) as i64;
            let items: Vec<i64> = (0..len).map(|_| (next() % 50) as i64).collect();
            let doc = json!({ "xs": items.iter().map(|v| json!({"v": v})).collect::<Vec<_>>() });
            let a = (next() % 13) as i64 - 6;
            let b = (next() % 13) as i64 - 6;
            let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) } as usize;
            let expected: Vec<Value> = if norm(a) < norm(b) {
                items[norm(a)..norm(b)].iter().map(|v| json!(v)).collect()
            } else {
                vec![]
            };
            assert_eq!(
                sel(&format!("$.xs[{a}:{b}].v"), &doc),
                Some(Value::Array(expected)),
                "{doc} [{a}:{b}]"
            );
            let idx = if a < 0 { len + a } else { a };
            let expected = (0..len).contains(&idx).then(|| json!(items[idx as usize]));
            assert_eq!(sel(&format!("$.xs[{a}].v"), &doc), expected, "{doc} [{a}]");
            let threshold = (next() % 50) as i64;
            let expected: Vec<Value> = items
                .iter()
                .filter(|v| **v >= threshold)
                .map(|v| json!(v))
                .collect();
            assert_eq!(
                sel(&format!("$.xs[?(@.v >= {threshold})].v"), &doc),
                Some(Value::Array(expected))
            );
        }
    }

    /// Property: for any object and any of its keys, `$.key` selects
    /// exactly that value and placing it back at `$.key` is a no-op.
    #[test]
    fn select_and_place_agree_on_generated_documents() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let n = (next() % 6 + 1) as usize;
            let mut doc = serde_json::Map::new();
            for i in 0..n {
                let key = format!("k{}_{}", i, next() % 100);
                let value = match next() % 4 {
                    0 => json!(next() % 1000),
                    1 => json!(format!("s{}", next() % 10)),
                    2 => json!([next() % 5, {"inner": next() % 7}]),
                    _ => json!({"deep": {"v": next() % 3}}),
                };
                doc.insert(key, value);
            }
            let doc = Value::Object(doc);
            for (k, v) in doc.as_object().unwrap() {
                let text = format!("$.{k}");
                assert_eq!(sel(&text, &doc).as_ref(), Some(v));
                assert_eq!(sel(&format!("$['{k}']"), &doc).as_ref(), Some(v));
                let mut copy = doc.clone();
                ReferencePath::parse(&text)
                    .unwrap()
                    .place(&mut copy, v.clone())
                    .unwrap();
                assert_eq!(copy, doc);
                let all = sel("$.*", &doc).unwrap();
                assert!(all.as_array().unwrap().contains(v));
            }
        }
    }
}
