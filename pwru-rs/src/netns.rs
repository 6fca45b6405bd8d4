//! Network namespaces: resolving `--filter-netns` to an inode and `--filter-ifname` to an ifindex
//! inside that namespace.

use std::{
    ffi::CString,
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use crate::cli::NetnsSpec;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open netns {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a network namespace")]
    NotNetns { path: PathBuf },
    #[error("no process is in netns inode {0}, so interface names cannot be resolved there")]
    NoProcessInNetns(u32),
    #[error("interface '{name}' not found in netns {netns}")]
    NoSuchInterface { name: String, netns: u32 },
    #[error("cannot enter netns {netns}: {source}")]
    Enter { netns: u32, source: std::io::Error },
}

/// A network namespace: its inode (what the kernel programs compare) and a path to enter it.
#[derive(Debug, Clone)]
pub struct Netns {
    pub inode: u32,
    path: PathBuf,
}

const NSFS_MAGIC: i64 = 0x6e73_6673;

impl Netns {
    /// pwru-rs's own network namespace.
    pub fn current() -> Result<Self, NetnsError> {
        Self::from_path(Path::new("/proc/self/ns/net"))
    }

    pub fn resolve(spec: &NetnsSpec) -> Result<Self, NetnsError> {
        match spec {
            NetnsSpec::Path(p) => Self::from_path(p),
            NetnsSpec::Inode(inode) => Ok(Self::find_by_inode(*inode)?.unwrap_or(Self {
                inode: *inode,
                path: PathBuf::new(),
            })),
        }
    }

    fn from_path(path: &Path) -> Result<Self, NetnsError> {
        let open_err = |source| NetnsError::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        // SAFETY: statfs on a valid fd into a zeroed out-struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
            return Err(open_err(std::io::Error::last_os_error()));
        }
        // A bind-mounted netns (ip netns add) and /proc/PID/ns/net are both on nsfs.
        if st.f_type as i64 != NSFS_MAGIC {
            return Err(NetnsError::NotNetns {
                path: path.to_owned(),
            });
        }
        let inode = file.metadata().map_err(open_err)?.ino();
        let inode = u32::try_from(inode).map_err(|_| NetnsError::NotNetns {
            path: path.to_owned(),
        })?;
        Ok(Self {
            inode,
            path: path.to_owned(),
        })
    }

    /// Finds a process living in the namespace, to be able to enter it.
    fn find_by_inode(inode: u32) -> Result<Option<Self>, NetnsError> {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Ok(None);
        };
        for entry in procs.flatten() {
            let path = entry.path().join("ns/net");
            if entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
                && std::fs::metadata(&path)
                    .map(|m| m.ino() == u64::from(inode))
                    .unwrap_or(false)
            {
                return Ok(Some(Self { inode, path }));
            }
        }
        Ok(None)
    }

    /// The ifindex of `name` inside this namespace.
    pub fn ifindex(&self, name: &str) -> Result<u32, NetnsError> {
        if self.path.as_os_str().is_empty() {
            return Err(NetnsError::NoProcessInNetns(self.inode));
        }
        let netns = self.inode;
        let not_found = || NetnsError::NoSuchInterface {
            name: name.to_owned(),
            netns,
        };
        let cname = CString::new(name).map_err(|_| not_found())?;
        let file = File::open(&self.path).map_err(|source| NetnsError::Open {
            path: self.path.clone(),
            source,
        })?;
        // setns() changes only the calling thread: do it in a throwaway thread so the rest of
        // pwru-rs stays in its own namespace. if_nametoindex opens a socket in the thread's netns.
        std::thread::scope(|s| {
            s.spawn(|| {
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(NetnsError::Enter {
                        netns,
                        source: std::io::Error::last_os_error(),
                    });
                }
                match unsafe { libc::if_nametoindex(cname.as_ptr()) } {
                    0 => Err(not_found()),
                    i => Ok(i),
                }
            })
            .join()
            .unwrap_or_else(|_| Err(not_found()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_netns_has_loopback_as_1() {
        let ns = Netns::current().unwrap();
        assert_ne!(ns.inode, 0);
        // Entering one's own netns is allowed without privileges? Not always: only check as root.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(ns.ifindex("lo").unwrap(), 1);
            assert!(matches!(
                ns.ifindex("no-such-if0"),
                Err(NetnsError::NoSuchInterface { .. })
            ));
        }
    }

    #[test]
    fn rejects_non_netns_files() {
        assert!(matches!(
            Netns::from_path(Path::new("/proc/self/status")),
            Err(NetnsError::NotNetns { .. })
        ));
        assert!(matches!(
            Netns::from_path(Path::new("/nonexistent/ns")),
            Err(NetnsError::Open { .. })
        ));
    }

    #[test]
    fn inode_spec_finds_own_namespace() {
        let own = Netns::current().unwrap();
        let found = Netns::resolve(&NetnsSpec::Inode(own.inode)).unwrap();
        assert_eq!(found.inode, own.inode);
    }
}
