//! The bundled sample, compiled into the binary so `tributary demo` works
//! from any directory.

pub const PIPELINE_TOML: &str = include_str!("../pipeline.toml");

/// Order events for the speed layer, in arrival order, with poison,
/// duplicates and late events (see sample/stream/gen_orders_events.py).
pub const ORDER_EVENTS: &str = include_str!("../sample/stream/orders_events.jsonl");
pub const ORDER_EVENTS_DATE: &str = "2025-12-03";

pub struct SampleFile {
    pub dataset: &'static str,
    pub date: &'static str,
    pub name: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! sample {
    ($ds:literal, $date:literal, $name:literal) => {
        SampleFile {
            dataset: $ds,
            date: $date,
            name: $name,
            bytes: include_bytes!(concat!("../sample/raw/", $ds, "/date=", $date, "/", $name)),
        }
    };
}

/// In arrival order: upstream systems deliver day by day.
pub const FILES: &[SampleFile] = &[
    sample!("orders", "2025-12-01", "orders.csv"),
    sample!("user_events", "2025-12-01", "events.csv"),
    sample!("customer_base", "2025-12-01", "customers.csv"),
    sample!("customer_behavior_assets", "2025-12-01", "behavior.csv"),
    sample!("orders", "2025-12-02", "orders.csv.gz"),
    sample!("user_events", "2025-12-02", "events.csv"),
    sample!("customer_base", "2025-12-02", "customers.csv"),
    sample!("customer_behavior_assets", "2025-12-02", "behavior.csv"),
    sample!("orders", "2025-12-03", "orders.csv"),
    sample!("user_events", "2025-12-03", "events.csv"),
    sample!("customer_base", "2025-12-03", "customers.csv"),
];
