//! The `hearth` binary: parses the command line and hands over to
//! [`hearth::cli::run`].

fn main() {
    let code = hearth::cli::run();
    std::process::exit(code);
}
