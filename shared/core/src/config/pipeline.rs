//! `[pipelines.<name>]`: which datasets make a date ready, the time zone,
//! and the first date the pipeline owns.

use super::{ConfigError, Within};
use chrono::NaiveDate;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub description: String,
    /// The datasets that must all have arrived for a date to be data_ready.
    pub datasets: Vec<String>,
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// The first date the pipeline is responsible for (as Airflow's
    /// start_date): the watermark begins the day before it, and catchup
    /// covers every date from it.
    #[serde(default, deserialize_with = "optional_date")]
    pub start_date: Option<NaiveDate>,
}

/// A date written either as a TOML date (`2025-12-01`) or a string.
fn optional_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    use serde::de::Error;
    let text = match Option::<toml::Value>::deserialize(d)? {
        None => return Ok(None),
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Datetime(dt)) => dt.to_string(),
        Some(other) => {
            return Err(D::Error::custom(format!(
                "expected a date such as \"2025-12-01\", found {}",
                other.type_str()
            )))
        }
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{text:?} is not a date YYYY-MM-DD: {e}")))
}

fn default_tz() -> String {
    "UTC".to_string()
}

impl PipelineConfig {
    /// The watermark a pipeline has before any date completed: the day
    /// before its start_date, if it has one.
    pub fn initial_watermark(&self) -> Option<NaiveDate> {
        self.start_date.and_then(|d| d.pred_opt())
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        // Validated at load; UTC is only reached for a config built in code.
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

impl PipelineConfig {
    pub(super) fn validate(&self, name: &str, within: &Within) -> Result<(), ConfigError> {
        let Within { config, invalid } = *within;
        let p = self;
        let plausible =
            NaiveDate::from_ymd_opt(1970, 1, 1).zip(NaiveDate::from_ymd_opt(9999, 12, 31));
        if let (Some(d), Some((first, last))) = (p.start_date, plausible) {
            if d < first || d > last {
                return Err(invalid(
                    format!("pipelines.{name}.start_date"),
                    format!("{d} is outside {first} to {last}"),
                    "give the first date the pipeline owns".into(),
                ));
            }
        }
        if p.datasets.is_empty() {
            return Err(invalid(
                format!("pipelines.{name}.datasets"),
                "a pipeline needs at least one dataset".into(),
                "list the datasets whose arrival makes a date ready".into(),
            ));
        }
        for d in &p.datasets {
            if !config.datasets.contains_key(d) {
                return Err(invalid(
                    format!("pipelines.{name}.datasets"),
                    format!("unknown dataset {d:?}"),
                    format!("use one of: {}", config.dataset_names()),
                ));
            }
        }
        if p.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(invalid(
                format!("pipelines.{name}.timezone"),
                format!("{:?} is not an IANA time zone", p.timezone),
                "use a name such as \"UTC\" or \"Europe/Berlin\"".into(),
            ));
        }
        Ok(())
    }
}
