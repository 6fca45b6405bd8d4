//! Attaching the kernel programs: one module per backend.

pub mod tracepoint;

use std::os::fd::OwnedFd;

/// Hooks attached by a backend. Dropping it detaches them all.
pub struct Attached {
    /// Names of the hooks, indexed by `Event::hook` (tracepoint backend).
    pub hook_names: Vec<String>,
    /// Kernel links; closing the fd detaches.
    links: Vec<OwnedFd>,
}

impl Attached {
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}
