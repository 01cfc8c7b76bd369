//! The `switchyard` command.

use std::process::ExitCode;

use clap::Parser as _;

mod cli;

/// jemalloc rather than glibc malloc: under load the host allocates per request from both
/// worker threads, and glibc's arenas spent ~17 % of its CPU; mimalloc was as fast but kept
/// ~90 MB more resident (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
