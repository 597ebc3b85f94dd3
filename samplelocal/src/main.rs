use clap::Parser;

fn main() -> std::process::ExitCode {
    // Parsed first: `--help`, `--version` and usage errors exit here, and
    // the command decides the set-up (no thread exists yet).
    let cli = tributary::cli::Cli::parse();
    tributary_process::set_up(cli.command.workload());
    if !cli.command.serves_http() {
        tributary_process::end_quietly_when_output_closes();
    }
    match tributary::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
