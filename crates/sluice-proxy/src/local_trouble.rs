//! Errors whose cause is this node, not the peer (N3): no descriptor, no
//! memory, no socket buffer, no source port. A probe or connect that fails
//! this way says nothing about the backend: it is "unknown", never a
//! backend failure.

use std::io;

use thiserror::Error;

/// What this node ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LocalTrouble {
    /// The process reached its descriptor limit (`EMFILE`).
    #[error("too many open files")]
    ProcessDescriptors,
    /// The system-wide file table is full (`ENFILE`).
    #[error("too many open files in the system")]
    SystemDescriptors,
    /// The kernel or the allocator had no memory (`ENOMEM`).
    #[error("out of memory")]
    Memory,
    /// No socket buffer space (`ENOBUFS`).
    #[error("no socket buffer space")]
    Buffers,
    /// No free source address or port (`EADDRNOTAVAIL`, `EADDRINUSE`), or
    /// no room to start a connection (`EAGAIN` from `connect`).
    #[error("no free source port")]
    SourcePorts,
}

impl LocalTrouble {
    /// The local cause of a socket, bind or connect error, if it has one.
    /// Every other error (refused, reset, unreachable, timed out) is the
    /// peer's or the network's.
    pub fn of(err: &io::Error) -> Option<LocalTrouble> {
        match err.raw_os_error() {
            Some(libc::EMFILE) => Some(LocalTrouble::ProcessDescriptors),
            Some(libc::ENFILE) => Some(LocalTrouble::SystemDescriptors),
            Some(libc::ENOMEM) => Some(LocalTrouble::Memory),
            Some(libc::ENOBUFS) => Some(LocalTrouble::Buffers),
            Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE | libc::EAGAIN) => {
                Some(LocalTrouble::SourcePorts)
            }
            Some(_) => None,
            None => match err.kind() {
                io::ErrorKind::OutOfMemory => Some(LocalTrouble::Memory),
                io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => {
                    Some(LocalTrouble::SourcePorts)
                }
                _ => None,
            },
        }
    }

    /// The local cause anywhere in an error's chain of sources (an I/O
    /// error wrapped by an HTTP client, say).
    pub fn in_chain(err: &(dyn std::error::Error + 'static)) -> Option<LocalTrouble> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(trouble) = e.downcast_ref::<io::Error>().and_then(LocalTrouble::of) {
                return Some(trouble);
            }
            next = e.source();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_causes_are_told_from_the_peers() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(
            LocalTrouble::of(&os(libc::EMFILE)),
            Some(LocalTrouble::ProcessDescriptors)
        );
        assert_eq!(
            LocalTrouble::of(&os(libc::ENFILE)),
            Some(LocalTrouble::SystemDescriptors)
        );
        assert_eq!(
            LocalTrouble::of(&os(libc::ENOMEM)),
            Some(LocalTrouble::Memory)
        );
        assert_eq!(
            LocalTrouble::of(&os(libc::ENOBUFS)),
            Some(LocalTrouble::Buffers)
        );
        assert_eq!(
            LocalTrouble::of(&os(libc::EADDRNOTAVAIL)),
            Some(LocalTrouble::SourcePorts)
        );
        for peer in [
            libc::ECONNREFUSED,
            libc::ECONNRESET,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::ETIMEDOUT,
            libc::EPIPE,
        ] {
            assert_eq!(LocalTrouble::of(&os(peer)), None, "errno {peer}");
        }
        assert_eq!(
            LocalTrouble::of(&io::Error::from(io::ErrorKind::OutOfMemory)),
            Some(LocalTrouble::Memory)
        );
        assert_eq!(
            LocalTrouble::of(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            None
        );
    }

    #[test]
    fn a_wrapped_cause_is_found() {
        #[derive(Debug, Error)]
        #[error("http: {source}")]
        struct Wrapper {
            source: io::Error,
        }
        let wrapped = Wrapper {
            source: io::Error::from_raw_os_error(libc::EMFILE),
        };
        assert_eq!(
            LocalTrouble::in_chain(&wrapped),
            Some(LocalTrouble::ProcessDescriptors)
        );
        let refused = Wrapper {
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert_eq!(LocalTrouble::in_chain(&refused), None);
    }
}
