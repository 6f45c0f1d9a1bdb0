use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match kiln::cli::run(kiln::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
