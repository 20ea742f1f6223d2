use clap::Parser;

fn main() -> std::process::ExitCode {
    statebench::cli::main(statebench::cli::Cli::parse())
}
