//! `devloom validate`: checks a configuration (and `DEVLOOM_*` overrides) without
//! running anything, and prints the effective configuration.

use std::path::PathBuf;

use std::io::Write;

use anyhow::Context;
use clap::Args;

use crate::config::Overrides;

/// Flags of `devloom validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The TOML file (default: $DEVLOOM_CONFIG, else built-in defaults).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let path = args.config.clone().or_else(|| std::env::var_os("DEVLOOM_CONFIG").map(PathBuf::from));
    let config = Overrides { config: args.config, ..Overrides::default() }.load()?;
    crate::build::postmortem_template(&config)?;
    let shown = path.map_or_else(|| "defaults".to_string(), |p| p.display().to_string());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{shown}: ok")?;
    writeln!(out, "{}", toml::to_string(&config).context("rendering the effective config")?)?;
    Ok(())
}
