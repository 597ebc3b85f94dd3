//! Intrinsic functions (`States.Format(...)`, `States.Array(...)`, …):
//! parsed and arity-checked when the definition loads, evaluated per state.

use crate::path::{type_name, Path};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Literal(Value),
    Path(Path),
    Call(Box<Intrinsic>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    pub name: String,
    pub args: Vec<Arg>,
}

/// (name, min args, max args)
/// Standard base64 (RFC 4648) with canonical padding, as
/// States.Base64Encode/Decode use it.
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
];

pub fn looks_like_intrinsic(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Intrinsic {
    pub fn parse(text: &str) -> Result<Intrinsic, String> {
        let mut p = P {
            chars: text.chars().collect(),
            at: 0,
        };
        let call = p.call()?;
        p.ws();
        if p.at != p.chars.len() {
            return Err(format!(
                "unexpected text after the closing ')' at position {}",
                p.at + 1
            ));
        }
        Ok(call)
    }
}

struct P {
    chars: Vec<char>,
    at: usize,
}

impl P {
    fn ws(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn call(&mut self) -> Result<Intrinsic, String> {
        self.ws();
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
        {
            self.at += 1;
        }
        let name: String = self.chars[start..self.at].iter().collect();
        let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) else {
            return Err(format!(
                "unknown intrinsic function '{name}' (known: {})",
                FUNCTIONS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
            ));
        };
        self.ws();
        if self.chars.get(self.at) != Some(&'(') {
            return Err(format!("'{name}' must be followed by '('"));
        }
        self.at += 1;
        let mut args = Vec::new();
        self.ws();
        if self.chars.get(self.at) == Some(&')') {
            self.at += 1;
        } else {
            loop {
                args.push(self.arg()?);
                self.ws();
                match self.chars.get(self.at) {
                    Some(',') => self.at += 1,
                    Some(')') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(format!("expected ',' or ')' in the arguments of {name}")),
                }
            }
        }
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!(
                "{name} takes {expected} argument(s), got {}",
                args.len()
            ));
        }
        let call = Intrinsic { name, args };
        check_literal_args(&call)?;
        Ok(call)
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.ws();
        match self.chars.get(self.at) {
            Some('\'') => {
                self.at += 1;
                let mut s = String::new();
                loop {
                    match self.chars.get(self.at) {
                        None => return Err("unterminated string argument".into()),
                        Some('\\') => {
                            // Escapes are kept for States.Format to see `\{`;
                            // everywhere else they resolve below.
                            let next = *self.chars.get(self.at + 1).ok_or("dangling '\\'")?;
                            s.push('\\');
                            s.push(next);
                            self.at += 2;
                        }
                        Some('\'') => {
                            self.at += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            self.at += 1;
                        }
                    }
                }
                Ok(Arg::Literal(Value::String(s)))
            }
            Some('$') => {
                let start = self.at;
                let mut depth = 0i32;
                let mut quote: Option<char> = None;
                while let Some(&c) = self.chars.get(self.at) {
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '\'') | (None, '"') => quote = Some(c),
                        (None, '[') | (None, '(') => depth += 1,
                        (None, ']') => depth -= 1,
                        (None, ')') if depth == 0 => break,
                        (None, ')') => depth -= 1,
                        (None, ',') if depth == 0 => break,
                        _ => {}
                    }
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().collect();
                Path::parse(text.trim())
                    .map(Arg::Path)
                    .map_err(|e| e.to_string())
            }
            Some('S') => Ok(Arg::Call(Box::new(self.call()?))),
            _ => {
                let start = self.at;
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| !matches!(c, ',' | ')') && !c.is_whitespace())
                {
                    self.at += 1;
                }
                let word: String = self.chars[start..self.at].iter().collect();
                serde_json::from_str::<Value>(&word)
                    .ok()
                    .filter(|v| v.is_number() || v.is_boolean() || v.is_null())
                    .map(Arg::Literal)
                    .ok_or_else(|| {
                        format!("'{word}' is not an argument: use 'text', a number, true, false, null, a $ path or an intrinsic")
                    })
            }
        }
    }
}

/// Literal arguments of the wrong type are definition errors, not runtime
/// surprises.
fn check_literal_args(call: &Intrinsic) -> Result<(), String> {
    let lit = |i: usize| match call.args.get(i) {
        Some(Arg::Literal(v)) => Some(v),
        _ => None,
    };
    match call.name.as_str() {
        "States.Format" => {
            if let Some(t) = lit(0) {
                let Some(t) = t.as_str() else {
                    return Err("States.Format's first argument is the template string".into());
                };
                let holes = count_placeholders(t);
                if holes != call.args.len() - 1 {
                    return Err(format!(
                        "States.Format template has {holes} '{{}}' placeholder(s) but {} value(s) follow",
                        call.args.len() - 1
                    ));
                }
            }
        }
        "States.Hash" => {
            if let Some(a) = lit(1) {
                if !a
                    .as_str()
                    .is_some_and(|a| HASHES.contains(&unescape(a).as_str()))
                {
                    return Err(format!("States.Hash algorithm must be one of {HASHES:?}"));
                }
            }
        }
        "States.JsonMerge" => {
            if let Some(deep) = lit(2) {
                if deep != &Value::Bool(false) {
                    return Err("States.JsonMerge only does shallow merges: its third argument must be false".into());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

const HASHES: &[&str] = &["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"];

fn count_placeholders(template: &str) -> usize {
    let mut n = 0;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                n += 1;
            }
            _ => {}
        }
    }
    n
}

/// Resolve `\'`, `\{`, `\}`, `\\` in a string literal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What intrinsics need from the running engine.
pub trait IntrinsicEnv {
    /// A uniformly random u64 (seeded per execution, so runs replay).
    fn random_u64(&mut self) -> u64;
}

/// SplitMix64: the seeded source of every random value (UUIDs, MathRandom,
/// retry jitter), so an execution replays identically.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Errors are (error name, message): an argument path that matches nothing
/// is `States.Runtime`, as AWS reports it; a call that cannot be computed
/// from its arguments is `States.IntrinsicFailure`.
pub fn evaluate(
    call: &Intrinsic,
    input: &Value,
    context: &Value,
    env: &mut dyn IntrinsicEnv,
) -> Result<Value, (&'static str, String)> {
    let mut args = Vec::with_capacity(call.args.len());
    for (i, a) in call.args.iter().enumerate() {
        args.push(match a {
            // Template escapes are States.Format's business.
            Arg::Literal(Value::String(s)) if call.name == "States.Format" && i == 0 => {
                Value::String(s.clone())
            }
            Arg::Literal(Value::String(s)) => Value::String(unescape(s)),
            Arg::Literal(v) => v.clone(),
            Arg::Path(p) => p.select(input, context).ok_or_else(|| {
                (
                    crate::errors::RUNTIME,
                    format!(
                        "The JSONPath '{}' specified as argument {} of {} could not be found in the {}",
                        p.text(),
                        i + 1,
                        call.name,
                        where_found(p.is_context(), input)
                    ),
                )
            })?,
            Arg::Call(inner) => evaluate(inner, input, context, env)?,
        });
    }
    apply(call.name.as_str(), &args, env).map_err(|m| (crate::errors::INTRINSIC_FAILURE, m))
}

/// "input '<the input>'" (shortened, as AWS's causes quote it) or "context
/// object".
pub fn where_found(context: bool, input: &Value) -> String {
    if context {
        return "context object".into();
    }
    let text = input.to_string();
    if text.len() > 1000 {
        format!("input '{}…'", &text[..text.floor_char_boundary(1000)])
    } else {
        format!("input '{text}'")
    }
}

/// A States.MathAdd operand: an integer, or a number rounded half up.
fn math_add_operand(name: &str, v: &Value, position: usize) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    v.as_f64()
        .map(|f| (f + 0.5).floor())
        .filter(|f| f.abs() < 9.0e15)
        .map(|f| f as i64)
        .ok_or_else(|| format!("{name}: argument {position} must be a number, got {v}"))
}

fn apply(name: &str, args: &[Value], env: &mut dyn IntrinsicEnv) -> Result<Value, String> {
    let want_str = |i: usize| -> Result<&str, String> {
        args[i].as_str().ok_or_else(|| {
            format!(
                "{name}: argument {} must be a string, got {}",
                i + 1,
                type_name(&args[i])
            )
        })
    };
    let want_array = |i: usize| -> Result<&Vec<Value>, String> {
        args[i].as_array().ok_or_else(|| {
            format!(
                "{name}: argument {} must be an array, got {}",
                i + 1,
                type_name(&args[i])
            )
        })
    };
    let want_int = |i: usize| -> Result<i64, String> {
        args[i]
            .as_i64()
            .or_else(|| {
                args[i]
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| {
                format!(
                    "{name}: argument {} must be an integer, got {}",
                    i + 1,
                    args[i]
                )
            })
    };
    Ok(match name {
        "States.Format" => {
            let template = want_str(0)?;
            let mut out = String::new();
            let mut values = args[1..].iter();
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    }
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let v = values
                            .next()
                            .ok_or_else(|| format!("{name}: more placeholders than values"))?;
                        match v {
                            Value::String(s) => out.push_str(s),
                            Value::Array(_) | Value::Object(_) => {
                                return Err(format!(
                                "{name}: values must be strings, numbers, booleans or null, got {}",
                                type_name(v)
                            ))
                            }
                            other => out.push_str(&other.to_string()),
                        }
                    }
                    c => out.push(c),
                }
            }
            if values.next().is_some() {
                return Err(format!("{name}: more values than placeholders"));
            }
            Value::String(out)
        }
        "States.StringToJson" => serde_json::from_str(want_str(0)?)
            .map_err(|e| format!("{name}: the string is not JSON: {e}"))?,
        "States.JsonToString" => Value::String(args[0].to_string()),
        "States.Array" => Value::Array(args.to_vec()),
        "States.ArrayPartition" => {
            let items = want_array(0)?;
            let size = want_int(1)?;
            if size <= 0 {
                return Err(format!(
                    "{name}: the chunk size must be positive, got {size}"
                ));
            }
            Value::Array(
                items
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            )
        }
        "States.ArrayContains" => Value::Bool(want_array(0)?.contains(&args[1])),
        "States.ArrayRange" => {
            let (start, end, step) = (want_int(0)?, want_int(1)?, want_int(2)?);
            if step == 0 {
                return Err(format!("{name}: the step must not be 0"));
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                out.push(json!(i));
                if out.len() > 1000 {
                    return Err(format!("{name}: the range has more than 1000 items"));
                }
                i += step;
            }
            Value::Array(out)
        }
        "States.ArrayGetItem" => {
            let items = want_array(0)?;
            let i = want_int(1)?;
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "{name}: index {i} is out of bounds (length {})",
                        items.len()
                    )
                })?
        }
        "States.ArrayLength" => json!(want_array(0)?.len()),
        "States.ArrayUnique" => {
            let mut seen: Vec<Value> = Vec::new();
            for v in want_array(0)? {
                if !seen.contains(v) {
                    seen.push(v.clone());
                }
            }
            Value::Array(seen)
        }
        "States.Base64Encode" => {
            let s = want_str(0)?;
            if s.chars().count() > 10_000 {
                return Err(format!("{name}: input longer than 10,000 characters"));
            }
            Value::String(BASE64.encode(s.as_bytes()))
        }
        "States.Base64Decode" => {
            let bytes = BASE64
                .decode(want_str(0)?)
                .map_err(|_| format!("{name}: the input is not valid base64"))?;
            Value::String(
                String::from_utf8(bytes)
                    .map_err(|_| format!("{name}: the decoded bytes are not UTF-8 text"))?,
            )
        }
        "States.Hash" => {
            let data = match &args[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let algorithm = want_str(1)?;
            Value::String(
                crate::hash::hex_digest(algorithm, data.as_bytes()).ok_or_else(|| {
                    format!("{name}: algorithm must be one of {HASHES:?}, got '{algorithm}'")
                })?,
            )
        }
        "States.JsonMerge" => {
            if args[2] != Value::Bool(false) {
                return Err(format!("{name}: only shallow merges (false) are supported"));
            }
            match (&args[0], &args[1]) {
                (Value::Object(a), Value::Object(b)) => {
                    let mut merged = a.clone();
                    for (k, v) in b {
                        merged.insert(k.clone(), v.clone());
                    }
                    Value::Object(merged)
                }
                _ => return Err(format!("{name}: both values must be objects")),
            }
        }
        "States.MathRandom" => {
            let (start, end) = (want_int(0)?, want_int(1)?);
            if end <= start {
                return Err(format!(
                    "{name}: end ({end}) must be greater than start ({start})"
                ));
            }
            let r = if args.len() == 3 {
                let mut s = want_int(2)? as u64;
                splitmix64(&mut s)
            } else {
                env.random_u64()
            };
            json!(start + (r % (end - start) as u64) as i64)
        }
        // AWS rounds a non-integer argument to the nearest integer, halves
        // up as Java's Math.round does (1.5 → 2, -1.5 → -1), then adds.
        "States.MathAdd" => json!(math_add_operand(name, &args[0], 1)?
            .checked_add(math_add_operand(name, &args[1], 2)?)
            .ok_or_else(|| format!("{name}: the sum overflows"))?),
        "States.StringSplit" => {
            let s = want_str(0)?;
            let delimiters: Vec<char> = want_str(1)?.chars().collect();
            Value::Array(
                s.split(|c| delimiters.contains(&c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )
        }
        "States.UUID" => {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&env.random_u64().to_le_bytes());
            b[8..].copy_from_slice(&env.random_u64().to_le_bytes());
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h = hex::encode(b);
            Value::String(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            ))
        }
        other => return Err(format!("unknown intrinsic function '{other}'")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        let call = |name: &str, arg: &str| eval(&format!("{name}($.a)"), json!({"a": arg}));
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "é ü 中"] {
            let encoded = call("States.Base64Encode", s).unwrap();
            let decoded = call("States.Base64Decode", encoded.as_str().unwrap()).unwrap();
            assert_eq!(decoded, s);
        }
        assert_eq!(call("States.Base64Encode", "foobar").unwrap(), "Zm9vYmFy");
        assert_eq!(call("States.Base64Encode", "fo").unwrap(), "Zm8=");
        for garbage in ["Zm8", "Z=m8", "Zm8*"] {
            assert!(call("States.Base64Decode", garbage).is_err(), "{garbage}");
        }
    }

    struct Fixed(u64);
    impl IntrinsicEnv for Fixed {
        fn random_u64(&mut self) -> u64 {
            splitmix64(&mut self.0)
        }
    }

    fn eval(text: &str, input: Value) -> Result<Value, String> {
        let call = Intrinsic::parse(text)?;
        evaluate(
            &call,
            &input,
            &json!({"Execution": {"Name": "run-1"}}),
            &mut Fixed(7),
        )
        .map_err(|(_, m)| m)
    }

    #[test]
    fn math_add_rounds_fractions_half_up_as_aws_does() {
        for (a, b, sum) in [
            (json!(1.5), json!(1), 3),
            (json!(1.4), json!(1), 2),
            (json!(-1.5), json!(0), -1),
            (json!(-1.6), json!(0), -2),
            (json!(2.5), json!(2.5), 6),
            (json!(111), json!(-1), 110),
        ] {
            assert_eq!(
                eval("States.MathAdd($.a, $.b)", json!({"a": a, "b": b})),
                Ok(json!(sum)),
                "{a} + {b}"
            );
        }
        let err = eval("States.MathAdd($.a, 1)", json!({"a": "3"})).unwrap_err();
        assert!(err.contains("must be a number"), "{err}");
    }

    #[test]
    fn an_argument_path_matching_nothing_is_a_runtime_error() {
        let call = Intrinsic::parse("States.MathAdd($.a, 1)").unwrap();
        let (name, message) =
            evaluate(&call, &json!({"b": 1}), &json!({}), &mut Fixed(7)).unwrap_err();
        assert_eq!(name, crate::errors::RUNTIME);
        assert!(
            message.contains("The JSONPath '$.a'")
                && message.contains("could not be found in the input '{\"b\":1}'"),
            "{message}"
        );
    }

    #[test]
    fn documented_examples() {
        assert_eq!(
            eval(
                "States.Format('Hello, my name is {}.', $.name)",
                json!({"name": "Arnav"})
            ),
            Ok(json!("Hello, my name is Arnav."))
        );
        assert_eq!(
            eval(
                r"States.Format('Escaped \{\} and \'quote\' {}', 42)",
                json!({})
            ),
            Ok(json!("Escaped {} and 'quote' 42"))
        );
        assert_eq!(
            eval(
                "States.StringToJson($.escaped)",
                json!({"escaped": "{\"foo\": \"bar\"}"})
            ),
            Ok(json!({"foo": "bar"}))
        );
        assert_eq!(
            eval(
                "States.JsonToString($.unescaped)",
                json!({"unescaped": {"foo": "bar"}})
            ),
            Ok(json!("{\"foo\":\"bar\"}"))
        );
        assert_eq!(
            eval(
                "States.Array('Foo', 2020, $.someJson, null)",
                json!({"someJson": {"random": "abcdefg"}})
            ),
            Ok(json!(["Foo", 2020, {"random": "abcdefg"}, null]))
        );
        assert_eq!(
            eval(
                "States.ArrayPartition($.inputArray, 4)",
                json!({"inputArray": [1,2,3,4,5,6,7,8,9]})
            ),
            Ok(json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]]))
        );
        assert_eq!(
            eval(
                "States.ArrayContains($.inputArray, $.lookingFor)",
                json!({"inputArray": [1,2,3,4,5,6,7,8,9], "lookingFor": 5})
            ),
            Ok(json!(true))
        );
        assert_eq!(
            eval("States.ArrayRange(1, 9, 2)", json!({})),
            Ok(json!([1, 3, 5, 7, 9]))
        );
        assert_eq!(
            eval(
                "States.ArrayGetItem($.inputArray, $.index)",
                json!({"inputArray": [1,2,3,4,5,6,7,8,9], "index": 5})
            ),
            Ok(json!(6))
        );
        assert_eq!(
            eval("States.ArrayLength($.a)", json!({"a": [1, 2, 3]})),
            Ok(json!(3))
        );
        assert_eq!(
            eval("States.ArrayUnique($.a)", json!({"a": [1,2,3,3,3,3,3,3,4]})),
            Ok(json!([1, 2, 3, 4]))
        );
        assert_eq!(
            eval(
                "States.Base64Encode($.input)",
                json!({"input": "Data to encode"})
            ),
            Ok(json!("RGF0YSB0byBlbmNvZGU="))
        );
        assert_eq!(
            eval(
                "States.Base64Decode($.base64)",
                json!({"base64": "RGF0YSB0byBlbmNvZGU="})
            ),
            Ok(json!("Data to encode"))
        );
        assert_eq!(
            eval(
                "States.Hash($.Data, $.Algorithm)",
                json!({"Data": "input data", "Algorithm": "SHA-1"})
            ),
            Ok(json!("aaff4a450a104cd177d28d18d74485e8cae074b7"))
        );
        assert_eq!(
            eval(
                "States.JsonMerge($.json1, $.json2, false)",
                json!({"json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}})
            ),
            Ok(json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3}))
        );
        assert_eq!(
            eval(
                "States.MathAdd($.value1, $.step)",
                json!({"value1": 111, "step": -1})
            ),
            Ok(json!(110))
        );
        assert_eq!(
            eval(
                "States.StringSplit($.inputString, $.splitter)",
                json!({"inputString": "This.is+a,test=string", "splitter": ".+,="})
            ),
            Ok(json!(["This", "is", "a", "test", "string"]))
        );
        assert_eq!(
            eval(
                "States.Format('{}-{}', States.ArrayLength(States.Array(1, 2)), $$.Execution.Name)",
                json!({})
            ),
            Ok(json!("2-run-1"))
        );
    }

    #[test]
    fn random_and_uuid_are_well_formed_and_seedable() {
        let r = eval("States.MathRandom(1, 999)", json!({}))
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((1..999).contains(&r));
        assert_eq!(
            eval("States.MathRandom(1, 1000, 42)", json!({})),
            eval("States.MathRandom(1, 1000, 42)", json!({}))
        );
        let u = eval("States.UUID()", json!({})).unwrap();
        let u = u.as_str().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn misuse_is_caught_at_load_or_run() {
        for (text, fragment) in [
            ("States.Nope(1)", "unknown intrinsic"),
            ("States.ArrayLength()", "takes 1 argument"),
            ("States.Format('{} {}', 1)", "2 '{}' placeholder(s) but 1"),
            ("States.Hash('x', 'SHA-3')", "algorithm must be one of"),
            ("States.JsonMerge($.a, $.b, true)", "shallow"),
            ("States.Array(1, bogus)", "is not an argument"),
            ("States.UUID() extra", "unexpected text"),
        ] {
            let err = Intrinsic::parse(text).unwrap_err();
            assert!(err.contains(fragment), "{text}: {err}");
        }
        for (text, input, fragment) in [
            (
                "States.ArrayLength($.a)",
                json!({"a": "x"}),
                "must be an array",
            ),
            (
                "States.ArrayGetItem($.a, 5)",
                json!({"a": [1]}),
                "out of bounds",
            ),
            ("States.StringToJson($.s)", json!({"s": "{"}), "not JSON"),
            ("States.MathAdd($.a, 1)", json!({}), "could not be found"),
            ("States.ArrayRange(1, 5000, 1)", json!({}), "more than 1000"),
            (
                "States.Format('{}', $.o)",
                json!({"o": {}}),
                "values must be",
            ),
        ] {
            let err = eval(text, input).unwrap_err();
            assert!(err.contains(fragment), "{text}: {err}");
        }
    }
}
