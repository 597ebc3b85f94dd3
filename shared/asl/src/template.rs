//! Payload templates (Parameters, ItemSelector, ResultSelector): JSON in
//! which a key ending in `.$` takes its value from a path or an intrinsic.

use crate::intrinsics::{self, looks_like_intrinsic, Intrinsic, IntrinsicEnv};
use crate::path::Path;
use serde_json::{Map, Value};

/// A value computed at run time: a path or an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Dynamic {
    Path(Path),
    Intrinsic(Intrinsic),
}

impl Dynamic {
    pub fn parse(text: &str) -> Result<Dynamic, String> {
        if looks_like_intrinsic(text) {
            Intrinsic::parse(text).map(Dynamic::Intrinsic)
        } else {
            Path::parse(text)
                .map(Dynamic::Path)
                .map_err(|e| e.to_string())
        }
    }

    /// Errors are (error name, message): a path that matches nothing is
    /// `States.Runtime` (which no Catch catches), as AWS reports it; a
    /// failing intrinsic `States.IntrinsicFailure`.
    pub fn evaluate(
        &self,
        input: &Value,
        context: &Value,
        env: &mut dyn IntrinsicEnv,
    ) -> Result<Value, (&'static str, String)> {
        match self {
            Dynamic::Path(p) => p.select(input, context).ok_or_else(|| {
                (
                    crate::errors::RUNTIME,
                    format!(
                        "The JSONPath '{}' could not be found in the {}",
                        p.text(),
                        intrinsics::where_found(p.is_context(), input)
                    ),
                )
            }),
            Dynamic::Intrinsic(call) => intrinsics::evaluate(call, input, context, env),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Dynamic(Dynamic),
}

impl Template {
    /// Errors name the offending key.
    pub fn parse(value: &Value) -> Result<Template, String> {
        Ok(match value {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (key, v) in map {
                    if let Some(name) = key.strip_suffix(".$") {
                        let Some(text) = v.as_str() else {
                            return Err(format!(
                                "'{key}' ends in '.$', so its value must be a path or an intrinsic string, not {v}"
                            ));
                        };
                        let dynamic = Dynamic::parse(text).map_err(|e| format!("'{key}': {e}"))?;
                        fields.push((name.to_string(), Template::Dynamic(dynamic)));
                    } else {
                        let inner = Template::parse(v).map_err(|e| format!("{key}.{e}"))?;
                        fields.push((key.clone(), inner));
                    }
                }
                if fields
                    .iter()
                    .all(|(_, t)| matches!(t, Template::Literal(_)))
                {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(fields)
                }
            }
            Value::Array(items) => {
                let parsed: Vec<Template> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Template::parse(v).map_err(|e| format!("[{i}].{e}")))
                    .collect::<Result<_, _>>()?;
                if parsed.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(parsed)
                }
            }
            other => Template::Literal(other.clone()),
        })
    }

    pub fn render(
        &self,
        input: &Value,
        context: &Value,
        env: &mut dyn IntrinsicEnv,
    ) -> Result<Value, (&'static str, String)> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Dynamic(d) => d.evaluate(input, context, env)?,
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(input, context, env))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    let v = t.render(input, context, env).map_err(|(name, m)| match t {
                        // AWS's words: "The JSONPath '$.x' specified for the
                        // field 'k.$' could not be found in the input '…'".
                        Template::Dynamic(Dynamic::Path(p)) => (
                            name,
                            format!(
                                "The JSONPath '{}' specified for the field '{k}.$' could not be found in the {}",
                                p.text(),
                                intrinsics::where_found(p.is_context(), input)
                            ),
                        ),
                        _ => (name, format!("field '{k}': {m}")),
                    })?;
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
        })
    }
}
