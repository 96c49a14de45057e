//! The `devloom` command: parses the command line and dispatches to [`devloom::cli`].

use std::process::ExitCode;

use clap::Parser;
use devloom::cli::{Cli, dispatch, init_logging, is_broken_pipe, report};

// glibc's allocator spends a third of replay time on spans allocated on the reader
// thread and freed on the operator thread; mimalloc handles that pattern well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match dispatch(cli.command) {
        Ok(code) => code,
        // The reader went away (`devloom demo | head`): a normal end, not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}
