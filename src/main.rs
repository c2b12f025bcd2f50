//! defectscope: with no command (or `open`) the workbench window; every other command runs
//! headless (`cli`). Thin: parse the arguments, then run the window or the command.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};

fn main() {
    let parsed = Cli::parse();
    let result = match parsed.command {
        None => cli::run_gui(None, parsed.screenshot.as_deref(), &parsed.panel),
        Some(Command::Open { path }) => {
            cli::run_gui(path, parsed.screenshot.as_deref(), &parsed.panel)
        }
        Some(c) if parsed.screenshot.is_some() => Err(anyhow::anyhow!(
            "--screenshot renders the window; use it without the {} command",
            cli::command_name(&c)
        )),
        Some(c) => cli::run_headless(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
