//! The `shoal` command line.

mod cli;

// glibc's malloc took 13% of a loaded node's CPU (see BENCH.md); mimalloc
// serves the many small, short-lived allocations of request handling faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(error) = cli::run() {
        // One line: the error and its causes.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
