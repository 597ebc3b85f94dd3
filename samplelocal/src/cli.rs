use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::commands;

#[derive(Parser, Debug)]
#[command(name = "tributary", version, about = "Serverless data pipelines, run locally")]
pub struct Cli {
    /// Local workspace holding the bucket, state store and catalog.
    #[arg(long, global = true, default_value = ".tributary")]
    pub workspace: PathBuf,
    /// Machine-readable output (one JSON document), no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The cleaner on one CSV file, with 1 and 2 threads.
    Clean(commands::bench::BenchCleanArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Bench(BenchCommand::Clean(args)) => commands::bench::run(args, cli.json),
    }
}
