// mimalloc: each connection worker allocates from a heap of its own, and a small GET's
// allocations cost ~15 % less CPU than with glibc's malloc (loadtests/README.md, "Allocator").
mod alloc;

#[global_allocator]
static ALLOC: alloc::MiMalloc = alloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kubeguard::cli::main()
}
