//! The `gatehouse` binary: every command lives in `cli`.

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
