//! The `shoal` command line.

mod cli;

fn main() {
    if let Err(error) = cli::run() {
        // One line: the error and its causes.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
