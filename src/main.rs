//! The `statebench` binary: parses the command line and hands it to
//! [`statebench::cli::main`], where everything happens.

use clap::Parser;

fn main() -> std::process::ExitCode {
    statebench::cli::main(statebench::cli::Cli::parse())
}
