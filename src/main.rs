//! The `shoal` command line.

mod cli;

fn main() {
    quiet_on_closed_output();
    if let Err(error) = cli::run() {
        // One line: the error and its causes.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// Exit status of a command whose output reader went away, as shells
/// report a process ended by SIGPIPE (128 + 13).
const CLOSED_OUTPUT_EXIT: i32 = 141;

/// Like other Unix tools, stop quietly when the reader of our output has
/// gone (`shoal status | head`) instead of reporting a panic: a print to a
/// closed pipe panics in `println!`, and this hook turns exactly that panic
/// into a quiet exit.
fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(CLOSED_OUTPUT_EXIT);
        }
        default(info);
    }));
}
