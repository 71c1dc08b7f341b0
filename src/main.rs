//! The `crossbrief` binary: parses the command line, sets up logging, runs the command and
//! turns its result into an exit code (`crossbrief --help` lists them).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crossbrief::cli::{self, Cli, EXIT_ERROR};

fn main() -> ExitCode {
    crossbrief::engine::device::keep_freed_memory();
    // Usage errors exit with clap's code 2; --help and --version with 0.
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    match cli::dispatch(cli) {
        Ok(code) => code,
        // The reader went away (`| head`): nothing more to say, and nothing went wrong.
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::printable(&format!("{e:#}")));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("crossbrief={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crossbrief::progress::LogWriter)
        .with_target(false)
        .init();
}
