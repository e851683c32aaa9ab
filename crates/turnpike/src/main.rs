//! `turnpike`: serve API Gateway definitions locally, exactly as AWS would.

mod keys;
mod render;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The request path allocates small, short-lived objects on every request; mimalloc's
/// per-thread free lists serve them faster than glibc malloc (see bench/README.md).
#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// mimalloc, entered as its C API intends. `mimalloc::MiMalloc` sends every allocation through
/// `mi_malloc_aligned`, which in mimalloc 3 falls back to over-allocating whenever its inline
/// path misses (a block size that is not a power of two, an empty free list, a read buffer of
/// 8 KiB): about 6 such allocations per proxied request showed in profiles. Alignments every
/// block has anyway go to `mi_malloc`, as `std`'s own allocator does with `malloc`.
struct Allocator;

/// Alignment of a mimalloc block whose size is a multiple of it, up to this (`MI_MAX_ALIGN_SIZE`).
const NATURAL_ALIGN: usize = 16;

fn is_natural(size: usize, align: usize) -> bool {
    align <= NATURAL_ALIGN && align <= size && size.is_multiple_of(align)
}

// SAFETY: every pointer handed out comes from mimalloc, and one from `mi_malloc`/`mi_zalloc` is
// checked against the requested alignment (one that is not aligned is freed and the aligned
// entry point used instead); mimalloc's `mi_free` and `mi_realloc_aligned` accept blocks from
// any of its entry points.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys as mi;
        let (size, align) = (layout.size(), layout.align());
        if is_natural(size, align) {
            let p = mi::mi_malloc(size).cast::<u8>();
            if (p as usize) & (align - 1) == 0 {
                return p;
            }
            mi::mi_free(p.cast());
        }
        mi::mi_malloc_aligned(size, align).cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys as mi;
        let (size, align) = (layout.size(), layout.align());
        if is_natural(size, align) {
            let p = mi::mi_zalloc(size).cast::<u8>();
            if (p as usize) & (align - 1) == 0 {
                return p;
            }
            mi::mi_free(p.cast());
        }
        mi::mi_zalloc_aligned(size, align).cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        libmimalloc_sys::mi_free(ptr.cast());
    }

    /// Reallocations are rare on the request path; mimalloc's aligned entry point keeps the
    /// alignment without a second copy.
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
    }
}

#[derive(Parser)]
#[command(
    name = "turnpike",
    version,
    about = "A self-hosted API gateway that behaves like Amazon API Gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a project file (turnpike.yaml) or an OpenAPI/Swagger definition.
    Serve(serve::ServeArgs),
    /// Check a project file or definition and list every error and unsupported feature.
    Validate {
        /// Project file or OpenAPI/Swagger definition (JSON or YAML).
        file: PathBuf,
        /// Stage to create for a bare OpenAPI definition.
        #[arg(long)]
        stage: Option<String>,
    },
    /// Render a mapping template against a request, like the console's test invoke.
    Render(render::RenderArgs),
    /// Manage API keys in the data directory (create, list, disable, enable, delete).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Requests per API key and day, like API Gateway's GetUsage.
    Usage(keys::UsageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TURNPIKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Validate { file, stage } => serve::validate(&file, stage),
        Command::Render(args) => render::run(args),
        Command::Keys(cmd) => keys::keys(cmd),
        Command::Usage(args) => keys::usage(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod allocator_tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::Allocator;

    /// Every size class shape the request path uses, and alignments above mimalloc's natural
    /// one: each block is aligned, writable, zeroed when asked, and keeps its bytes when grown.
    #[test]
    fn blocks_are_aligned_and_keep_their_contents() {
        let sizes = [
            1, 3, 8, 16, 24, 40, 48, 56, 80, 200, 328, 1000, 1025, 8192, 70_000,
        ];
        let aligns = [1, 2, 4, 8, 16, 32, 64, 128, 4096];
        for &size in &sizes {
            for &align in &aligns {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: non-zero sizes; every block is freed with its own layout.
                unsafe {
                    let p = Allocator.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xab, size);
                    let grown = Allocator.realloc(p, layout, size * 2 + 8);
                    assert_eq!(grown as usize % align, 0, "realloc {size} align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xab));
                    Allocator.dealloc(
                        grown,
                        Layout::from_size_align(size * 2 + 8, align).expect("layout"),
                    );
                    let z = Allocator.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    Allocator.dealloc(z, layout);
                }
            }
        }
    }
}
