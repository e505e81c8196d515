//! The binary's global allocator: mimalloc, called the way its own `malloc` is fastest.
//!
//! The `mimalloc` crate's `MiMalloc` passes every allocation to `mi_malloc_aligned`, even when the
//! alignment asked for is the 8 bytes every mimalloc block has anyway. In mimalloc v3 that call
//! takes its fast path only for blocks of at most 1 KiB; a larger one goes through the generic
//! aligned path, which allocates plainly only for power-of-two block sizes and otherwise
//! over-allocates by the alignment and pays a second look-up (a request's 5 KiB pipeline future,
//! its read buffers, a `Vec` growing). Known upstream: purpleprotocol/mimalloc_rust#170.
//!
//! Here an alignment of at most 8 goes to `mi_malloc`, `mi_zalloc` and `mi_realloc`; anything else
//! keeps the aligned calls. Measured with `loadtests/callgrind.sh` (loadtests/README.md,
//! "Allocator"): ~900 fewer instructions per small GET over HTTP/1.1 and over h2.
//!
//! This module is the only `unsafe` in kubeguard: implementing `GlobalAlloc` is unsafe by
//! definition. The library (`src/lib.rs`) forbids `unsafe` outright.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// Every block mimalloc hands out is aligned to at least this: its size classes are multiples of
/// the word size and its pages start 16-byte aligned.
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc, with plain calls where they already give the alignment asked for.
pub struct MiMalloc;

// SAFETY: each method forwards to the mimalloc function with the same contract as the
// `GlobalAlloc` method (a block of at least `size` bytes, or null on failure; `mi_free` and
// `mi_realloc*` accept any pointer mimalloc returned). The plain functions are used only when
// `layout.align() <= PLAIN_ALIGN`, which every mimalloc block satisfies (checked in debug builds).
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { fresh(layout, mi_malloc, mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { fresh(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from mimalloc.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from mimalloc with `layout`; the new block keeps its alignment.
        let p = unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi_realloc(ptr.cast::<c_void>(), new_size)
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align())
            }
        };
        debug_assert!(p.is_null() || (p as usize).is_multiple_of(layout.align()));
        p.cast()
    }
}

/// A new block for `layout`: from `plain` when mimalloc's own alignment is enough, else from
/// `aligned`.
///
/// # Safety
/// `plain` and `aligned` are mimalloc's allocating functions (`mi_malloc`/`mi_malloc_aligned`
/// or `mi_zalloc`/`mi_zalloc_aligned`).
#[inline(always)]
unsafe fn fresh(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: both are mimalloc's, which take any size and a power-of-two alignment.
    let p = unsafe {
        if layout.align() <= PLAIN_ALIGN {
            plain(layout.size())
        } else {
            aligned(layout.size(), layout.align())
        }
    };
    debug_assert!(p.is_null() || (p as usize).is_multiple_of(layout.align()));
    p.cast()
}
