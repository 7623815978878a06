//! The process's use of glibc's allocator, for a server whose memory comes and goes in large
//! pieces: password hashes take 19 MiB each for a moment, and tenants are loaded and unloaded.
//! Left alone, glibc raises its mmap threshold after the first large free and then serves such
//! blocks from heaps it never gives back, and keeps freed heap pages of unloaded tenants.

use std::sync::Weak;
use std::time::Duration;

use maas_core::Platform;

/// Allocations from this size on are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// How often the trimmer looks whether tenants were unloaded since its last look.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Fixes the mmap threshold (a fixed value also turns off glibc's dynamic raising of it).
/// Called before any thread exists.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; no allocation is in flight on
    // another thread yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives freed memory back to the system after tenants were unloaded.
pub fn spawn_trimmer(platform: Weak<Platform>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TRIM_INTERVAL);
        let mut loaded = usize::MAX;
        loop {
            interval.tick().await;
            let Some(platform) = platform.upgrade() else {
                return;
            };
            let now = platform.loaded_tenants();
            if now < loaded {
                trim();
            }
            loaded = now;
        }
    });
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
