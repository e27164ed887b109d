fn main() -> std::process::ExitCode {
    claudeflare::cli::run()
}
