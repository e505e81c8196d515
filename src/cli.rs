//! The command line: a thin layer that parses flags and calls into the library.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
