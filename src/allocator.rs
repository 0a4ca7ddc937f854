//! The memory allocator: mimalloc, tuned to keep the daemon small.
//!
//! Ingest allocates and frees many short strings per mail (headers, decoded
//! text, rendered notifications, bound SQL values). mimalloc does that
//! faster than glibc's allocator (`bench/replay.sh`: about a fifth less
//! time), but by default it commits whole arenas up front and keeps freed
//! pages for a while, which took peak RSS from 49 MB to 86 MB, past the
//! 64 MB budget. Committing on demand and returning freed pages at once
//! keeps the speed and brings RSS back to ~51 MB.

/// The option numbers of mimalloc v3's `mi_option_e` (mimalloc.h), which
/// libmimalloc-sys does not name; the test below checks them against their
/// documented defaults.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the options. The binary runs it as a static constructor, before
/// Rust's own start-up allocates: an option set later, in `main`, comes
/// after the first arena was committed and no longer counts.
pub extern "C" fn tune() {
    // SAFETY: plain integer options, set before any thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_numbers_name_the_options_meant() {
        // mimalloc.h: arena_eager_commit defaults to 2, purge_delay to 1000 ms.
        // A renumbered enum would make these read other options.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT), 2);
            assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 1000);
        }
    }
}
