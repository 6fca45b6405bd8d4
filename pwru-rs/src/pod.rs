//! `--filter-pod NAMESPACE/NAME`: a Kubernetes pod's network namespace, found on the node
//! itself, without the API server: through the container runtime (`crictl inspectp`: the
//! sandbox's network namespace path, or its pid) when crictl is there, else through the kubelet's
//! pod log directory (`/var/log/pods/<namespace>_<name>_<uid>/`, on every node), which gives the
//! pod's UID, and the cgroup of the pod's processes (`…pod<uid>…` in `/proc/<pid>/cgroup`,
//! with `_` for `-` under the systemd cgroup driver), whose `/proc/<pid>/ns/net` it is.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

/// Where the node's files are: `/`, or a fake layout in tests (`PWRU_RS_TEST_HOST_ROOT`, which
/// also keeps crictl out).
pub const TEST_HOST_ROOT: &str = "PWRU_RS_TEST_HOST_ROOT";

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("--filter-pod {0:?}: expected NAMESPACE/NAME")]
    Syntax(String),
    #[error("--filter-pod {namespace}/{name}: no such pod on this node (crictl knows none, and there is no {logs}/{namespace}_{name}_<uid>)")]
    NotFound {
        namespace: String,
        name: String,
        logs: String,
    },
    #[error("--filter-pod {namespace}/{name}: no process of the pod (uid {uid}) is running on this node")]
    NoProcess {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// `NAMESPACE/NAME`.
pub fn parse(spec: &str) -> Result<(String, String), PodError> {
    match spec.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(PodError::Syntax(spec.to_owned())),
    }
}

/// The pod's network namespace file (to be opened: a bind mount or `/proc/<pid>/ns/net`).
pub fn netns_path(spec: &str) -> Result<PathBuf, PodError> {
    let (namespace, name) = parse(spec)?;
    let test_root = std::env::var_os(TEST_HOST_ROOT).map(PathBuf::from);
    if test_root.is_none() {
        if let Some(path) = from_crictl(&namespace, &name) {
            return Ok(path);
        }
    }
    let root = test_root.unwrap_or_else(|| PathBuf::from("/"));
    from_node_files(&root, &namespace, &name)
}

/// Through the container runtime: the ready sandbox's network namespace. `None` without crictl
/// or without the pod.
fn from_crictl(namespace: &str, name: &str) -> Option<PathBuf> {
    let run = |args: &[&str]| -> Option<String> {
        let out = Command::new("crictl").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let ids = run(&[
        "pods",
        "--namespace",
        namespace,
        "--name",
        name,
        "--state",
        "ready",
        "-q",
    ])?;
    // `--name` matches by regex: keep the sandbox whose metadata is exactly the pod.
    for id in ids.split_whitespace() {
        let info: serde_json::Value = serde_json::from_str(&run(&["inspectp", id])?).ok()?;
        let meta = &info["status"]["metadata"];
        if meta["name"] != name || meta["namespace"] != namespace {
            continue;
        }
        if let Some(path) = sandbox_netns(&info) {
            log::info!(
                "--filter-pod {namespace}/{name}: sandbox {id}, netns {}",
                path.display()
            );
            return Some(path);
        }
    }
    None
}

/// What `crictl inspectp` says of the sandbox's network namespace: containerd's runtime spec
/// names the path, CRI-O's info the pid.
fn sandbox_netns(info: &serde_json::Value) -> Option<PathBuf> {
    let namespaces = info["info"]["runtimeSpec"]["linux"]["namespaces"].as_array();
    if let Some(path) = namespaces
        .into_iter()
        .flatten()
        .find(|ns| ns["type"] == "network")
        .and_then(|ns| ns["path"].as_str())
        .filter(|p| !p.is_empty())
    {
        return Some(PathBuf::from(path));
    }
    let pid = info["info"]["pid"].as_u64().filter(|&p| p > 0)?;
    Some(PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// A pod the kubelet runs on this node, by its log directory's name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodePod {
    namespace: String,
    name: String,
    uid: String,
}

impl NodePod {
    /// Whether a `/proc/<pid>/cgroup` text puts the process in this pod: `pod<uid>` under the
    /// cgroupfs driver, `pod<uid with _ for ->.slice` under systemd's.
    fn owns(&self, cgroup: &str) -> bool {
        let (plain, systemd) = (
            format!("pod{}", self.uid),
            format!("pod{}", self.uid.replace('-', "_")),
        );
        cgroup
            .lines()
            .any(|l| l.contains(plain.as_str()) || l.contains(systemd.as_str()))
    }
}

/// The pods of `root/var/log/pods/<namespace>_<name>_<uid>` (names and namespaces have no `_`).
fn node_pods(root: &Path) -> Vec<NodePod> {
    std::fs::read_dir(root.join("var/log/pods"))
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let dir = e.ok()?.file_name().into_string().ok()?;
            let mut parts = dir.splitn(3, '_');
            Some(NodePod {
                namespace: parts.next()?.to_owned(),
                name: parts.next()?.to_owned(),
                uid: parts.next()?.to_owned(),
            })
        })
        .collect()
}

/// The processes under `root/proc`, lowest pid first, with their cgroup text.
fn processes(root: &Path) -> impl Iterator<Item = (u32, String)> {
    let proc = root.join("proc");
    let mut pids: Vec<u32> = std::fs::read_dir(&proc)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().filter_map(move |pid| {
        let cgroup = std::fs::read_to_string(proc.join(format!("{pid}/cgroup"))).ok()?;
        Some((pid, cgroup))
    })
}

/// Through the kubelet's log directory and the processes' cgroups, under `root`.
fn from_node_files(root: &Path, namespace: &str, name: &str) -> Result<PathBuf, PodError> {
    let pod = node_pods(root)
        .into_iter()
        .find(|p| p.namespace == namespace && p.name == name)
        .ok_or_else(|| PodError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            logs: root.join("var/log/pods").display().to_string(),
        })?;
    match processes(root).find(|(_, cgroup)| pod.owns(cgroup)) {
        Some((pid, _)) => {
            log::info!(
                "--filter-pod {namespace}/{name}: uid {}, process {pid}",
                pod.uid
            );
            Ok(root.join(format!("proc/{pid}/ns/net")))
        }
        None => Err(PodError::NoProcess {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: pod.uid,
        }),
    }
}

/// JSON `pod` / `k8s_namespace`: the pod of each network namespace on this node, by inode,
/// from the kubelet's pod directories and the pods' processes. An unknown inode rescans, at most
/// once per `interval` (pods come and go during a trace).
pub struct PodNames {
    root: PathBuf,
    by_netns: HashMap<u32, (String, String)>,
    last_scan: Instant,
    interval: Duration,
}

impl PodNames {
    /// On a Kubernetes node (the kubelet's pod log directory is there), the pods' namespaces
    /// now; `None` elsewhere, so that other machines pay nothing.
    pub fn on_this_node(interval: Duration) -> Option<Self> {
        let root = std::env::var_os(TEST_HOST_ROOT)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        if node_pods(&root).is_empty() {
            return None;
        }
        Some(Self {
            by_netns: scan(&root),
            root,
            last_scan: Instant::now(),
            interval,
        })
    }

    /// The `(namespace, name)` of the pod whose netns is `inode`.
    pub fn lookup(&mut self, inode: u32) -> Option<(&str, &str)> {
        if !self.by_netns.contains_key(&inode) && self.last_scan.elapsed() >= self.interval {
            self.by_netns = scan(&self.root);
            self.last_scan = Instant::now();
        }
        self.by_netns
            .get(&inode)
            .map(|(ns, name)| (ns.as_str(), name.as_str()))
    }
}

/// netns inode → pod, for every pod with a process on this node (the lowest pid's netns).
fn scan(root: &Path) -> HashMap<u32, (String, String)> {
    use std::os::unix::fs::MetadataExt;
    let pods = node_pods(root);
    let mut by_netns = HashMap::new();
    for (pid, cgroup) in processes(root) {
        let Some(pod) = pods.iter().find(|p| p.owns(&cgroup)) else {
            continue;
        };
        if let Ok(meta) = std::fs::metadata(root.join(format!("proc/{pid}/ns/net"))) {
            by_netns
                .entry(meta.ino() as u32)
                .or_insert_with(|| (pod.namespace.clone(), pod.name.clone()));
        }
    }
    by_netns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_node(pods: &[(&str, &str)], cgroups: &[(u32, &str)]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("pwru-rs-pod-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (dir, _) in pods {
            std::fs::create_dir_all(root.join("var/log/pods").join(dir)).unwrap();
        }
        for (pid, cgroup) in cgroups {
            let dir = root.join(format!("proc/{pid}/ns"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(root.join(format!("proc/{pid}/cgroup")), cgroup).unwrap();
        }
        root
    }

    #[test]
    fn specs_are_namespace_slash_name() {
        assert_eq!(parse("kube-system/coredns-5d78").unwrap().1, "coredns-5d78");
        for bad in ["", "web", "/web", "default/", "a/b/c"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pod_found_by_its_log_directory_and_cgroup() {
        let uid = "0f9c3c6e-8a34-4d5b-9b54-2f1a7f0c1d11";
        // The systemd driver's slice name, and a process of another pod before it.
        let root = fake_node(
            &[(&format!("default_web_{uid}"), ""), ("default_db_1111-2222", "")],
            &[
                (100, "0::/kubepods.slice/kubepods-pod1111_2222.slice/cri-containerd-a.scope\n"),
                (
                    4242,
                    &format!(
                        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-b.scope\n",
                        uid.replace('-', "_")
                    ),
                ),
            ],
        );
        assert_eq!(
            from_node_files(&root, "default", "web").unwrap(),
            root.join("proc/4242/ns/net")
        );
        assert_eq!(
            from_node_files(&root, "default", "db").unwrap(),
            root.join("proc/100/ns/net")
        );
        // The cgroupfs driver's path.
        let root2 = fake_node(
            &[("ns1_api_aaaa-bbbb", "")],
            &[(7, "12:memory:/kubepods/burstable/podaaaa-bbbb/c0ffee\n")],
        );
        assert_eq!(
            from_node_files(&root2, "ns1", "api").unwrap(),
            root2.join("proc/7/ns/net")
        );
        assert!(matches!(
            from_node_files(&root, "default", "nope"),
            Err(PodError::NotFound { .. })
        ));
        let root3 = fake_node(
            &[("default_gone_cccc-dddd", "")],
            &[(9, "0::/user.slice\n")],
        );
        assert!(matches!(
            from_node_files(&root3, "default", "gone"),
            Err(PodError::NoProcess { .. })
        ));
        for r in [root, root2, root3] {
            let _ = std::fs::remove_dir_all(r);
        }
    }

    #[test]
    fn crictl_sandboxes_name_their_netns() {
        let containerd: serde_json::Value = serde_json::json!({
            "status": {"metadata": {"name": "web", "namespace": "default"}},
            "info": {"runtimeSpec": {"linux": {"namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/var/run/netns/cni-1234"}
            ]}}}
        });
        assert_eq!(
            sandbox_netns(&containerd),
            Some(PathBuf::from("/var/run/netns/cni-1234"))
        );
        let crio = serde_json::json!({"info": {"pid": 4242}});
        assert_eq!(
            sandbox_netns(&crio),
            Some(PathBuf::from("/proc/4242/ns/net"))
        );
        assert_eq!(sandbox_netns(&serde_json::json!({"info": {}})), None);
    }
}
