pub mod approvals;
pub mod asl;
pub mod bench;
pub mod bench_asl;
pub mod demo;
pub mod ops;
pub mod report;
pub mod serve;
