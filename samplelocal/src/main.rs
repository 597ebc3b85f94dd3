use clap::Parser;

fn main() -> std::process::ExitCode {
    tributary_handlers::process::set_up();
    let cli = tributary::cli::Cli::parse();
    match tributary::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
