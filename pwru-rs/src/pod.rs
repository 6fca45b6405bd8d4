//! `--filter-pod NAMESPACE/NAME`: a Kubernetes pod's network namespace, found on the node
//! itself, without the API server: through the container runtime (`crictl inspectp`: the
//! sandbox's network namespace path, or its pid) when crictl is there, else through the kubelet's
//! pod log directory (`/var/log/pods/<namespace>_<name>_<uid>/`, on every node), which gives the
//! pod's UID, and the cgroup of the pod's processes (`…pod<uid>…` in `/proc/<pid>/cgroup`,
//! with `_` for `-` under the systemd cgroup driver), whose `/proc/<pid>/ns/net` it is.

use std::{
    path::{Path, PathBuf},
    process::Command,
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

/// Through the kubelet's log directory and the processes' cgroups, under `root`.
fn from_node_files(root: &Path, namespace: &str, name: &str) -> Result<PathBuf, PodError> {
    let logs = root.join("var/log/pods");
    let prefix = format!("{namespace}_{name}_");
    let uid = std::fs::read_dir(&logs)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let dir = e.file_name().to_string_lossy().into_owned();
            dir.strip_prefix(&prefix).map(str::to_owned)
        })
        .ok_or_else(|| PodError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            logs: logs.display().to_string(),
        })?;
    // cgroupfs driver: `pod<uid>`; systemd driver: `pod<uid with _ for ->.slice`.
    let marks = [format!("pod{uid}"), format!("pod{}", uid.replace('-', "_"))];
    let proc = root.join("proc");
    let mut pids: Vec<u32> = std::fs::read_dir(&proc)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(cgroup) = std::fs::read_to_string(proc.join(format!("{pid}/cgroup"))) else {
            continue;
        };
        if cgroup
            .lines()
            .any(|l| marks.iter().any(|m| l.contains(m.as_str())))
        {
            log::info!("--filter-pod {namespace}/{name}: uid {uid}, process {pid}");
            return Ok(proc.join(format!("{pid}/ns/net")));
        }
    }
    Err(PodError::NoProcess {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid,
    })
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
