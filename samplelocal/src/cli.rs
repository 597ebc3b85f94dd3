use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::commands;
use crate::commands::model::ModelCommand;
use crate::local::LocalRuntime;
use tributary_process::Workload;

#[derive(Parser, Debug)]
#[command(
    name = "tributary",
    version,
    about = "Serverless data pipelines, run locally"
)]
pub struct Cli {
    /// Local workspace holding the bucket, state store and catalog.
    #[arg(
        long,
        global = true,
        default_value = ".tributary",
        env = "TRIBUTARY_WORKSPACE"
    )]
    pub workspace: PathBuf,
    /// pipeline.toml to use (default: the workspace's own copy).
    #[arg(long, global = true, env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Machine-readable output (one JSON document), no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// Operate a deployed stack instead of the workspace: FILE is its
    /// `terraform output -json` (a value it lacks comes from the functions'
    /// environment variables, TRIBUTARY_BUCKET and so on). Credentials and
    /// region come from the usual AWS chain. Needs the AWS-capable build
    /// (`--features aws`) and --config with the deployed pipeline.toml.
    #[arg(long, global = true, env = "TRIBUTARY_STACK", value_name = "FILE")]
    pub stack: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the bundled sample end to end on a fresh workspace.
    Demo {
        /// Wait for you to decide approval requests in the browser
        /// (`tributary serve` on 127.0.0.1:8765) instead of approving them.
        #[arg(long)]
        interactive: bool,
    },
    /// Put a file under raw/ and deliver its S3 ObjectCreated event.
    Upload {
        file: PathBuf,
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        date: String,
    },
    /// Run one function's handler in-process on a raw AWS event.
    Invoke {
        /// Any function of functions/src/bin (object-created, stream-aggregate,
        /// query-api, approval-callback, …); sample events are in
        /// samplelocal/events/.
        function: String,
        #[arg(long)]
        event: PathBuf,
    },
    /// Partition status, counts, and watermarks.
    Partitions {
        #[arg(long)]
        dataset: Option<String>,
        /// Only partitions not (yet) published.
        #[arg(long)]
        unprocessed: bool,
    },
    /// Watermarks.
    #[command(subcommand)]
    Watermark(WatermarkCommand),
    /// Delete partitions past each layer's retention, and superseded runs.
    Retention {
        #[arg(long)]
        dry_run: bool,
        /// The date to measure retention from (default: today, UTC).
        #[arg(long)]
        today: Option<String>,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Amazon States Language: validate and run state machines locally.
    #[command(subcommand)]
    Asl(AslCommand),
    /// Run a pipeline over a date range through the catchup state machine
    /// (published dates are skipped unless --force).
    Backfill {
        #[arg(long)]
        pipeline: String,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        #[arg(long)]
        force: bool,
    },
    /// Run a labeling workflow ([labeling.<name>] in pipeline.toml) on a
    /// published date; low-confidence labels wait for review.
    Label {
        #[arg(long)]
        labeling: String,
        #[arg(long)]
        date: String,
    },
    /// Run the feature pipeline ([features.<set>] in pipeline.toml) for a date.
    Features {
        #[arg(long)]
        set: String,
        #[arg(long)]
        date: String,
    },
    /// The recommendation model and its streaming inference consumer.
    #[command(subcommand)]
    Model(ModelCommand),
    /// The EventBridge schedule.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Write an HTML page of one execution: the state machine with the path
    /// taken, each state's timing and outcome, the data counts.
    Report {
        execution: String,
        /// Where to write it (default: <workspace>/reports/<execution>.html).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replay a JSON-lines file as a Kinesis stream into stream-aggregate,
    /// in micro-batches with real record shapes.
    Stream {
        #[arg(long)]
        replay_file: PathBuf,
        #[arg(long, default_value = "orders")]
        stream: String,
        /// How often each shard is polled (the event source mapping's
        /// batching window): 500ms, 1s, 10s.
        #[arg(long, default_value = "1s")]
        batch_window: String,
        /// Records per second (200/s); default: all at once.
        #[arg(long)]
        rate: Option<String>,
        /// Shards of the stand-in stream, 1 to 500.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=500))]
        shards: u32,
        /// Most records per invocation (the mapping's BatchSize), 1 to 10000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        batch_size: u64,
    },
    /// Poison records of the speed layer: list them, replay them after a fix.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Replay the stream batches that still failed after their retries (a
    /// deployed stack's stream-failures queue, with --stack): each record
    /// is read from the stream again and handed to its consumer, counted
    /// once.
    Redrive,
    /// Deployment helpers for infra/ (Terraform).
    #[command(subcommand)]
    Infra(InfraCommand),
    /// Batch views (daily and hourly) of a stream, for a date or a range.
    #[command(subcommand)]
    Views(ViewsCommand),
    /// Ask the query API: batch views for closed periods, realtime for the rest.
    Query {
        /// The served name (`serve_as` of a stream).
        #[arg(long, default_value = "sales")]
        name: String,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
        #[arg(long, default_value = "hour")]
        granularity: String,
        /// dimension=value, repeatable (product_id=P001).
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// A sliding window instead: 1m, 5m or 15m.
        #[arg(long)]
        recent: Option<String>,
    },
    /// Compare realtime with batch views, alert on deviation, correct realtime.
    Reconcile {
        #[arg(long)]
        stream: Option<String>,
        #[arg(long)]
        date: Option<String>,
    },
    /// Serve the approval links (and a page of pending approvals) on 127.0.0.1.
    Serve {
        #[arg(long, default_value_t = 8765)]
        port: u16,
    },
    /// Approval requests waiting for a person, and deciding them.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// State machine executions kept in the workspace.
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// Answer a task token with success (SendTaskSuccess) and resume its execution.
    TaskSuccess {
        #[arg(long)]
        token: String,
        /// The task's output: JSON text or @FILE.
        #[arg(long, default_value = "{}")]
        output: String,
    },
    /// Answer a task token with failure (SendTaskFailure) and resume its execution.
    TaskFailure {
        #[arg(long)]
        token: String,
        #[arg(long, default_value = "States.TaskFailed")]
        error: String,
        #[arg(long, default_value = "")]
        cause: String,
    },
    /// Tell a waiting task it is still alive (SendTaskHeartbeat).
    TaskHeartbeat {
        #[arg(long)]
        token: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum InfraCommand {
    /// Print (or write) the Terraform variables derived from --config:
    /// Glue tables and columns, retention per layer, Kinesis streams.
    Vars {
        /// Write here instead of stdout, e.g.
        /// infra/envs/dev/pipeline.auto.tfvars.json.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The function table, one function per line: name, workload and the
    /// ports it is given (what Terraform's local.functions and the SAM
    /// template must deploy, and what its policy must grant).
    Functions,
    /// The environment file of `sam local invoke --env-vars`: a deployed
    /// stack's values (--outputs, its `terraform output -json`), or an
    /// emulator's (the template's default names, --endpoint its URL).
    SamEnv {
        #[arg(long, value_name = "FILE")]
        outputs: Option<PathBuf>,
        /// AWS_ENDPOINT_URL for the functions, e.g. a moto server's
        /// http://host.docker.internal:5000.
        #[arg(long)]
        endpoint: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Dead letters not yet replayed, with their error.
    List {
        #[arg(long)]
        stream: Option<String>,
    },
    /// Decode each again with the current schema; recovered ones count once.
    Replay {
        #[arg(long, default_value = "orders")]
        stream: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ViewsCommand {
    /// Build and publish the views of a date, or of every date in a range.
    Build {
        #[arg(long)]
        stream: Option<String>,
        #[arg(long)]
        date: Option<String>,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Fire the daily catchup schedule for every pipeline (or one), as
    /// EventBridge Scheduler would at --at (default: now).
    Tick {
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        pipeline: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// Pending approval requests.
    List,
    /// Approve a request (as a click on its approve link would); the
    /// paused execution resumes.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Who decides (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// For a label review: corrections as `id,label` lines.
        #[arg(long)]
        corrections: Option<PathBuf>,
        /// For a label review: send what was not corrected back for another round.
        #[arg(long)]
        again: bool,
    },
    /// Reject a request; the execution quarantines the run and fails.
    Reject {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AslCommand {
    /// Check definitions; exit 0 only when every file is valid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a definition on the virtual clock; prints one JSON object
    /// {status, output, error, cause, …}; exit 0 only on SUCCEEDED.
    Run(commands::asl::RunArgs),
}

#[derive(Subcommand, Debug)]
pub enum ExecutionsCommand {
    List,
    /// Status, output or error of one execution.
    Show {
        name: String,
    },
    /// Its history events (GetExecutionHistory).
    History {
        name: String,
    },
    /// Stop a running (paused) execution: ABORTED (StopExecution).
    Stop {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WatermarkCommand {
    /// Move a pipeline's watermark on purpose (either direction; recorded with who and when).
    Set {
        #[arg(long)]
        pipeline: String,
        #[arg(long)]
        date: String,
        #[arg(long, default_value = "set by operator")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The cleaner on one CSV file, with 1 and 2 threads.
    Clean(commands::bench::BenchCleanArgs),
    /// One range worker of the distributed clean: time, peak memory, scratch.
    Range(commands::bench_range::BenchRangeArgs),
    /// The ASL interpreter: cost per state transition, a year of catchup.
    Asl,
    /// The speed layer: throughput, event → queryable latency, query p99.
    Stream(commands::bench_stream::BenchStreamArgs),
}

impl Command {
    /// Whether this command answers HTTP (its clients may hang up at any
    /// time, which must not end it).
    pub fn serves_http(&self) -> bool {
        matches!(
            self,
            Command::Serve { .. } | Command::Demo { interactive: true }
        )
    }

    /// Whether this command may clean files, itself or through an execution
    /// it starts or resumes (an approval, a task token, a schedule tick):
    /// those start with the heap on huge pages. Commands that only read or
    /// move state, or work on stream records, start once.
    pub fn workload(&self) -> Workload {
        match self {
            Command::Partitions { .. }
            | Command::Watermark(_)
            | Command::Retention { .. }
            | Command::Bench(BenchCommand::Asl | BenchCommand::Stream(_))
            | Command::Asl(AslCommand::Validate { .. })
            | Command::Executions(_)
            | Command::Report { .. }
            | Command::Stream { .. }
            | Command::Dlq(_)
            | Command::Redrive
            | Command::Infra(_)
            | Command::Views(_)
            | Command::Query { .. }
            | Command::Reconcile { .. }
            | Command::Approvals(ApprovalsCommand::List) => Workload::Light,
            // Including `invoke` of any function: locally, the execution a
            // handler starts or resumes runs in this process.
            _ => Workload::Bulk,
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    use commands::asl;
    let (ws, config) = (cli.workspace.as_path(), cli.config.as_deref());
    // A stack is operated only through the AWS adapters: no command may
    // fall through to the workspace.
    if let Some(stack) = &cli.stack {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(commands::stack::run(&cli, stack));
    }
    // These drive their own runtimes (the interpreter is synchronous).
    match &cli.command {
        Command::Bench(BenchCommand::Clean(args)) => return commands::bench::run(args, cli.json),
        Command::Bench(BenchCommand::Asl) => return commands::bench_asl::run(cli.json),
        Command::Bench(BenchCommand::Range(args)) => return commands::bench_range::run(args),
        Command::Bench(BenchCommand::Stream(args)) => {
            return commands::bench_stream::run(args, cli.json)
        }
        Command::Asl(AslCommand::Validate { files }) => return asl::validate(files, cli.json),
        Command::Asl(AslCommand::Run(args)) => return asl::run(args, ws, config),
        Command::Executions(ExecutionsCommand::List) => return asl::list(ws, cli.json),
        Command::Executions(ExecutionsCommand::Show { name }) => return asl::show(ws, name, false),
        Command::Executions(ExecutionsCommand::Stop { name }) => return asl::stop(ws, name),
        Command::Executions(ExecutionsCommand::History { name }) => {
            return asl::show(ws, name, true)
        }
        Command::TaskSuccess { token, output } => {
            let output = serde_json::from_str(output)
                .or_else(|_| {
                    let file = output.strip_prefix('@').ok_or(())?;
                    let text = std::fs::read_to_string(file).map_err(|_| ())?;
                    serde_json::from_str(&text).map_err(|_| ())
                })
                .map_err(|_| anyhow::anyhow!("--output must be JSON text or @FILE with JSON"))?;
            return asl::answer(
                ws,
                config,
                token,
                crate::stepfunctions::Answer::Success(output),
            );
        }
        Command::TaskFailure {
            token,
            error,
            cause,
        } => {
            let failure = tributary_asl::Failure::new(error.clone(), cause.clone());
            return asl::answer(
                ws,
                config,
                token,
                crate::stepfunctions::Answer::Failure(failure),
            );
        }
        Command::Report { execution, out } => {
            return commands::run_report::run(ws, execution, out.as_deref())
        }
        Command::Infra(InfraCommand::Vars { out }) => {
            return commands::infra::run(config, out.as_deref())
        }
        Command::Infra(InfraCommand::Functions) => {
            for f in tributary_handlers::FUNCTIONS {
                println!(
                    "{}\t{:?}\t{}",
                    f.name,
                    f.workload,
                    f.ports.names().join("|")
                );
            }
            return Ok(());
        }
        Command::Infra(InfraCommand::SamEnv { outputs, endpoint }) => {
            let env = commands::infra::sam_env(outputs.as_deref(), endpoint.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&env)?);
            return Ok(());
        }
        Command::TaskHeartbeat { token } => {
            return asl::answer(ws, config, token, crate::stepfunctions::Answer::Heartbeat)
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cli))
}

async fn run_async(cli: Cli) -> Result<()> {
    let open = || LocalRuntime::open(&cli.workspace, cli.config.as_deref());
    match &cli.command {
        Command::Demo { interactive } => {
            commands::demo::run(&cli.workspace, cli.json, *interactive).await
        }
        Command::Upload {
            file,
            dataset,
            date,
        } => commands::ops::upload(&open()?, file, dataset, date, cli.json).await,
        Command::Invoke { function, event } => {
            commands::ops::invoke(&open()?, function, event).await
        }
        Command::Partitions {
            dataset,
            unprocessed,
        } => {
            let rt = open()?;
            commands::ops::partitions(
                &rt.config,
                &rt.adapters.state,
                dataset.as_deref(),
                *unprocessed,
                cli.json,
            )
            .await
        }
        Command::Watermark(WatermarkCommand::Set {
            pipeline,
            date,
            reason,
        }) => {
            let rt = open()?;
            commands::ops::watermark_set(
                &rt.config,
                &rt.adapters.state,
                pipeline,
                date,
                reason,
                cli.json,
            )
            .await
        }
        Command::Retention { dry_run, today } => {
            let rt = open()?;
            commands::ops::retention(&rt.services(), *dry_run, today.as_deref(), cli.json).await
        }
        Command::Backfill {
            pipeline,
            start,
            end,
            force,
        } => commands::catchup::backfill(&open()?, pipeline, start, end, *force, cli.json).await,
        Command::Schedule(ScheduleCommand::Tick { at, pipeline }) => {
            commands::catchup::tick(&open()?, at.as_deref(), pipeline.as_deref(), cli.json).await
        }
        Command::Label { labeling, date } => {
            let rt = open()?;
            let execution = rt.run_labeling(labeling, date)?;
            commands::report::print_json(&execution)
        }
        Command::Features { set, date } => {
            let rt = open()?;
            let execution = rt.run_features(set, date)?;
            commands::report::print_json(&execution)
        }
        Command::Model(command) => commands::model::run(&open()?, command).await,
        Command::Serve { port } => commands::serve::run(&open()?, *port).await,
        Command::Stream {
            replay_file,
            stream,
            batch_window,
            rate,
            shards,
            batch_size,
        } => {
            let options = commands::stream::ReplayOptions {
                file: replay_file,
                stream,
                batch_window,
                rate: rate.as_deref(),
                shards: *shards,
                // Bounded by the parser above.
                batch_size: *batch_size as usize,
            };
            commands::stream::replay(&open()?, options, cli.json).await
        }
        Command::Dlq(DlqCommand::List { stream }) => {
            let rt = open()?;
            commands::stream::dlq_list(&rt.services(), stream.as_deref(), cli.json).await
        }
        Command::Dlq(DlqCommand::Replay { stream }) => {
            commands::stream::dlq_replay(&open()?, stream).await
        }
        Command::Redrive => anyhow::bail!(
            "redrive replays a deployed stack's stream-failures queue: run it with --stack FILE (a workspace's consumers keep no failure queue; their poison is in `tributary dlq list`)"
        ),
        Command::Views(ViewsCommand::Build {
            stream,
            date,
            start,
            end,
        }) => {
            commands::stream::views_build(
                &open()?,
                stream.as_deref(),
                date.as_deref(),
                start.as_deref(),
                end.as_deref(),
            )
            .await
        }
        Command::Query {
            name,
            start,
            end,
            granularity,
            filters,
            recent,
        } => {
            let options = commands::stream::QueryOptions {
                name,
                start: start.as_deref(),
                end: end.as_deref(),
                granularity,
                filters,
                recent: recent.as_deref(),
                json: cli.json,
            };
            commands::stream::query(&open()?, options).await
        }
        Command::Reconcile { stream, date } => {
            commands::stream::reconcile(&open()?, stream.as_deref(), date.as_deref()).await
        }
        Command::Approvals(ApprovalsCommand::List) => {
            commands::approvals::list(&open()?.adapters.state, cli.json).await
        }
        Command::Approvals(ApprovalsCommand::Approve {
            id,
            reason,
            by,
            corrections,
            again,
        }) => {
            commands::approvals::decide(
                &open()?,
                id,
                tributary_core::approvals::Decision::Approve,
                reason.clone(),
                by.clone(),
                corrections.as_deref(),
                *again,
            )
            .await
        }
        Command::Approvals(ApprovalsCommand::Reject { id, reason, by }) => {
            commands::approvals::decide(
                &open()?,
                id,
                tributary_core::approvals::Decision::Reject,
                reason.clone(),
                by.clone(),
                None,
                false,
            )
            .await
        }
        Command::Bench(_)
        | Command::Asl(_)
        | Command::Infra(_)
        | Command::Executions(_)
        | Command::TaskSuccess { .. }
        | Command::TaskFailure { .. }
        | Command::TaskHeartbeat { .. }
        | Command::Report { .. } => unreachable!("handled before the runtime starts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(args: &str) -> Workload {
        let cli = Cli::try_parse_from(std::iter::once("tributary").chain(args.split_whitespace()))
            .unwrap_or_else(|e| panic!("{args}: {e}"));
        cli.command.workload()
    }

    #[test]
    fn only_commands_that_may_clean_start_with_the_heap_on_huge_pages() {
        for bulk in [
            "demo",
            "upload f.csv --dataset orders --date 2025-12-03",
            "invoke publish-partition --event e.json",
            "bench clean --in f.csv",
            "backfill --pipeline p --start 2025-12-01 --end 2025-12-03",
            "task-success --token t",
            "serve",
        ] {
            assert_eq!(workload(bulk), Workload::Bulk, "{bulk}");
        }
        for light in [
            "partitions",
            "watermark set --pipeline p --date 2025-12-03",
            "retention --dry-run",
            "executions list",
            "asl validate statemachines/partition.asl.json",
            "query --recent 5m",
            "approvals list",
        ] {
            assert_eq!(workload(light), Workload::Light, "{light}");
        }
    }
}
