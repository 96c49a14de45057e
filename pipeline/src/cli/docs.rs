//! `devloom completions SHELL` and `devloom man`: generated from the command definitions
//! (clap_complete, clap_mangen), so they never drift from `--help`.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Flags of `devloom completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `devloom completions bash > /etc/bash_completion.d/devloom`.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "devloom", &mut out);
    out.flush()?;
    Ok(())
}

/// Prints the man page.
pub fn man() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(())
}
