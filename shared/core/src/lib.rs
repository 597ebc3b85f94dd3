//! tributary's domain: partition layout, pipeline config, cleaning, quality,
//! atomic publish, the ports (traits) every adapter implements, and the use
//! cases over them. Nothing here knows about AWS.

pub mod approvals;
pub mod clean;
pub mod config;
pub mod distributed;
pub mod downstream;
pub mod error;
pub mod features;
pub mod inference;
pub mod jsonl;
pub mod keys;
pub mod labeling;
pub mod layout;
pub mod model;
pub mod orchestration;
pub mod partition;
pub mod ports;
pub mod publish;
pub mod published;
pub mod quality;
pub mod retention;
pub mod services;
pub mod slots;
pub mod state;
pub mod stream;
pub mod table_schema;
pub mod timestamps;
