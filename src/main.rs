fn main() -> std::process::ExitCode {
    kubeguard::cli::main()
}
