use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match kiln::cli::run(kiln::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // Every error exits 2 (as clap's usage errors do), with one message.
        Err(e) => {
            eprintln!("kiln: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
