//! Names for network namespace inodes (`--output-netns-names`): ip-netns names from
//! `/run/netns/*`, else `comm:pid` of the lowest-numbered process in the namespace (so the host's
//! netns reads as pid 1's, e.g. `systemd:1`, and a container's as its init's).
//!
//! Scanning touches the filesystem and allocates; lookups do neither. An inode missing from the
//! cache triggers a rescan at most once per [`RESCAN_INTERVAL`], so a flood of unknown inodes
//! costs one scan per interval, not one per event.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The shortest time between two rescans caused by unknown inodes.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

pub struct NetnsNames {
    /// `/` in production; a fake tree (with `run/netns` and `proc`) in tests.
    root: PathBuf,
    names: HashMap<u32, String>,
    last_scan: Instant,
    interval: Duration,
}

impl NetnsNames {
    /// Scans `root` once now.
    pub fn new(root: impl Into<PathBuf>, interval: Duration) -> Self {
        let root = root.into();
        Self {
            names: scan(&root),
            root,
            last_scan: Instant::now(),
            interval,
        }
    }

    /// The name of `inode`; rescans first if it is unknown and the last scan is `interval` old.
    /// A known inode costs one hash lookup: the clock is read only on a miss.
    #[inline]
    pub fn lookup(&mut self, inode: u32) -> Option<&str> {
        self.lookup_with_clock(inode, Instant::now)
    }

    fn lookup_with_clock(&mut self, inode: u32, now: impl FnOnce() -> Instant) -> Option<&str> {
        if !self.names.contains_key(&inode) {
            let now = now();
            if now.saturating_duration_since(self.last_scan) >= self.interval {
                self.names = scan(&self.root);
                self.last_scan = now;
            }
        }
        self.names.get(&inode).map(String::as_str)
    }
}

/// Every nameable netns under `root`: ip-netns names win over process names.
fn scan(root: &Path) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(root.join("run/netns")) {
        for entry in entries.flatten() {
            if let (Some(inode), Ok(name)) =
                (inode_of(&entry.path()), entry.file_name().into_string())
            {
                names.entry(inode).or_insert(name);
            }
        }
    }
    let proc = root.join("proc");
    let mut pids: Vec<u32> = std::fs::read_dir(&proc)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // Lowest pid first: a namespace's oldest process is usually the one that made it.
    pids.sort_unstable();
    for pid in pids {
        let dir = proc.join(pid.to_string());
        let Some(inode) = inode_of(&dir.join("ns/net")) else {
            continue;
        };
        if names.contains_key(&inode) {
            continue;
        }
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        names.insert(inode, format!("{}:{pid}", comm.trim_end_matches('\n')));
    }
    names
}

/// The inode `path` leads to (`/proc/PID/ns/net` is a link to the nsfs inode), if it fits a u32
/// as the kernel programs report it.
fn inode_of(path: &Path) -> Option<u32> {
    u32::try_from(std::fs::metadata(path).ok()?.ino()).ok()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A fake root: `/run/netns/<name>` files and `/proc/<pid>/{comm,ns/net}` where the netns of
    /// a process is a hard link to a `run/netns` file or to a file of its own.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("pwru-rs-netns-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("run/netns")).unwrap();
            fs::create_dir_all(dir.join("proc/self")).unwrap();
            Self(dir)
        }
        fn ip_netns(&self, name: &str) -> u32 {
            let path = self.0.join("run/netns").join(name);
            fs::write(&path, "").unwrap();
            inode_of(&path).unwrap()
        }
        /// A process in the netns of `run/netns/<shares>`, or in one of its own.
        fn process(&self, pid: u32, comm: &str, shares: Option<&str>) -> u32 {
            let dir = self.0.join(format!("proc/{pid}"));
            fs::create_dir_all(dir.join("ns")).unwrap();
            fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            match shares {
                Some(name) => {
                    fs::hard_link(self.0.join("run/netns").join(name), dir.join("ns/net")).unwrap()
                }
                None => fs::write(dir.join("ns/net"), "").unwrap(),
            }
            inode_of(&dir.join("ns/net")).unwrap()
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ip_netns_names_win_then_the_lowest_pid() {
        let root = FakeRoot::new("names");
        let b = root.ip_netns("b");
        root.process(7, "sleep", Some("b"));
        let pod = root.process(300, "pause", None);
        let host = root.process(1, "systemd", None);
        let mut names = NetnsNames::new(&root.0, RESCAN_INTERVAL);
        assert_eq!(names.lookup(b), Some("b"));
        assert_eq!(names.lookup(pod), Some("pause:300"));
        assert_eq!(names.lookup(host), Some("systemd:1"));
        // A later process in the pod's netns does not rename it, whatever its pid's text order.
        fs::create_dir_all(root.0.join("proc/1000/ns")).unwrap();
        fs::hard_link(
            root.0.join("proc/300/ns/net"),
            root.0.join("proc/1000/ns/net"),
        )
        .unwrap();
        fs::write(root.0.join("proc/1000/comm"), "app\n").unwrap();
        let names = NetnsNames::new(&root.0, RESCAN_INTERVAL);
        assert_eq!(names.names.get(&pod).map(String::as_str), Some("pause:300"));
    }

    #[test]
    fn unknown_inodes_rescan_at_most_once_per_interval() {
        let root = FakeRoot::new("rescan");
        let mut names = NetnsNames::new(&root.0, Duration::from_secs(1));
        let start = names.last_scan;
        let late = root.ip_netns("late");
        // Within the interval: no rescan, however many unknown inodes come.
        for _ in 0..1000 {
            assert_eq!(names.lookup_with_clock(late, || start), None);
        }
        assert_eq!(names.last_scan, start);
        let later = start + Duration::from_secs(1);
        assert_eq!(names.lookup_with_clock(late, || later), Some("late"));
        assert_eq!(names.last_scan, later);
        // A known inode never rescans, even after the interval.
        let gone_later = later + Duration::from_secs(5);
        fs::remove_file(root.0.join("run/netns/late")).unwrap();
        assert_eq!(names.lookup_with_clock(late, || gone_later), Some("late"));
        assert_eq!(names.last_scan, later);
    }

    #[test]
    fn missing_directories_give_no_names() {
        let mut names = NetnsNames::new("/nonexistent-pwru-rs-root", RESCAN_INTERVAL);
        assert_eq!(names.lookup(1), None);
    }
}
