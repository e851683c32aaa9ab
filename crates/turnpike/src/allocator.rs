//! The global allocator: mimalloc, entered as its C API intends.
//!
//! `mimalloc::MiMalloc` sends every allocation through `mi_malloc_aligned`, which in mimalloc 3
//! falls back to over-allocating whenever its inline path misses (a block size that is not a
//! power of two, an empty free list, a read buffer of 8 KiB): about 6 such allocations per
//! proxied request showed in profiles. Alignments every block has anyway go to `mi_malloc`, as
//! `std`'s own allocator does with `malloc`.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

pub struct Allocator;

/// Alignment of a mimalloc block whose size is a multiple of it, up to this (`MI_MAX_ALIGN_SIZE`).
const NATURAL_ALIGN: usize = 16;

/// `plain(size)` when every block of that size has the layout's alignment (checked: a block that
/// is not aligned is freed), else `aligned(size, align)`.
///
/// # Safety
/// `layout` has a non-zero size (`GlobalAlloc`'s contract).
#[inline]
unsafe fn allocate(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if align <= NATURAL_ALIGN && align <= size && size.is_multiple_of(align) {
        let p = plain(size).cast::<u8>();
        if (p as usize) & (align - 1) == 0 {
            return p;
        }
        mi::mi_free(p.cast());
    }
    aligned(size, align).cast()
}

// SAFETY: every pointer handed out comes from mimalloc with the requested alignment (see
// `allocate`); mimalloc's `mi_free` and `mi_realloc_aligned` accept blocks from any of its
// entry points.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocate(layout, mi::mi_malloc, mi::mi_malloc_aligned)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocate(layout, mi::mi_zalloc, mi::mi_zalloc_aligned)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast());
    }

    /// Reallocations are rare on the request path; mimalloc's aligned entry point keeps the
    /// alignment without a second copy.
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
