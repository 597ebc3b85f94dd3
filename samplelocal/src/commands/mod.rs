pub mod asl;
pub mod bench;
pub mod demo;
pub mod ops;
pub mod report;
