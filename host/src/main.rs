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
    // Memory freed while idle goes back to the system: without jemalloc's background
    // threads its decay only runs on the next allocations, so an idle host kept what a
    // burst had used. The first compile of a JavaScript connector (hundreds of MB of the
    // compiler's heap) left the host 110 MB larger for good (BENCHMARKS.md).
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: jemalloc's background purging is off: {err}");
    }
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
