//! [`ProtectError`]: why a worker could not put its guards up before its job.

/// A guard the worker could not set; it exits before reading its job.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// Dying with the parent (`PR_SET_PDEATHSIG`) could not be asked for.
    #[cfg(target_os = "linux")]
    #[error("PR_SET_PDEATHSIG: {0}")]
    DeathSignal(#[source] nix::Error),
    /// The server died before the worker could ask to die with it.
    #[cfg(target_os = "linux")]
    #[error("the server (pid {0}) is gone")]
    ParentGone(u32),
    /// The address-space cap (`RLIMIT_AS`) could not be set.
    #[error("RLIMIT_AS: {0}")]
    MemoryCap(#[source] nix::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_guard() {
        let e = ProtectError::MemoryCap(nix::Error::EPERM);
        assert!(e.to_string().starts_with("RLIMIT_AS: "), "{e}");
        #[cfg(target_os = "linux")]
        assert_eq!(
            ProtectError::ParentGone(42).to_string(),
            "the server (pid 42) is gone"
        );
    }
}
