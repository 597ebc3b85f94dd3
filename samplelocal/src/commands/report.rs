//! Output helpers shared by the commands.

use anyhow::Result;
use tributary_core::partition::DatasetRunReport;

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The summary table: dataset, date, rows in / kept / rejected /
/// duplicates, quality score, status.
pub fn runs_table(runs: &[DatasetRunReport]) -> String {
    let mut out = format!(
        "{:<26} {:<10} {:>6} {:>6} {:>8} {:>5} {:>7}  {}\n",
        "dataset", "date", "in", "kept", "rejected", "dups", "quality", "status"
    );
    for r in runs {
        let s = r.stats.clone().unwrap_or_default();
        let mut status = r.state.clone();
        if r.state == "held" {
            status.push_str(" (quality below threshold: awaiting approval)");
        }
        if let Some(e) = &r.error {
            status.push_str(&format!(": {e}"));
        }
        out.push_str(&format!(
            "{:<26} {:<10} {:>6} {:>6} {:>8} {:>5} {:>7}  {}\n",
            r.dataset,
            r.date,
            s.input,
            s.kept,
            s.rejected_total,
            s.duplicates,
            r.quality_score.map_or("-".into(), |q| format!("{q:.3}")),
            status
        ));
    }
    out
}
