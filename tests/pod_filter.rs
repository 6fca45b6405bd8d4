//! `--filter-pod NAMESPACE/NAME` against a node layout built by the test (the kubelet's pod log
//! directory, a process whose cgroup is the pod's, its `/proc/<pid>/ns/net` a real network
//! namespace), on this host's tracepoint backend: only that namespace's packets are traced, each
//! event names the pod (JSON `pod`, `k8s_namespace`), and a pod the node does not have is one
//! error line.

use std::{path::Path, process::Command, time::Duration};

use integration_tests::{pwru_bin, require_root, run_within, veth_pair};
use pwru_rs::{output::JsonEvent, pod::TEST_HOST_ROOT};
use pwru_rs_harness::{Pwru, TempDir};

const UID: &str = "6f1d2c3b-4a59-4e8f-9d7c-0123456789ab";

/// A node where pod default/web runs as process 4242 in netns `netns` (a bind mount's path).
fn fake_node(netns: &str) -> TempDir {
    let root = TempDir::new("pwru-rs-node").unwrap();
    std::fs::create_dir_all(root.join(&format!("var/log/pods/default_web_{UID}"))).unwrap();
    std::fs::create_dir_all(root.join("proc/1/ns")).unwrap();
    std::fs::write(root.join("proc/1/cgroup"), "0::/init.scope\n").unwrap();
    std::fs::create_dir_all(root.join("proc/4242/ns")).unwrap();
    std::fs::write(
        root.join("proc/4242/cgroup"),
        format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-1.scope\n",
            UID.replace('-', "_")
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(netns, root.join("proc/4242/ns/net")).unwrap();
    root
}

#[test]
fn only_the_pods_netns_is_traced() {
    require_root();
    let net = veth_pair();
    let node = fake_node(&net.b.path());
    let dir = TempDir::new("pwru-rs-pod").unwrap();
    let out = dir.join("out.jsonl");
    let bin = pwru_bin();
    let args: Vec<String> = [
        format!("{TEST_HOST_ROOT}={}", node.path().display()),
        bin.to_string_lossy().into_owned(),
        "--backend".into(),
        "tracepoint".into(),
        "--filter-pod".into(),
        "default/web".into(),
        "--output-json".into(),
        "--output-file".into(),
        out.to_string_lossy().into_owned(),
        "icmp".into(),
    ]
    .into();
    let pwru = Pwru::start(
        Path::new("/usr/bin/env"),
        dir,
        args,
        Duration::from_secs(60),
    )
    .expect("pwru-rs gets ready");
    net.ping_a_to_b().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stopped = pwru.stop(Duration::from_secs(30)).expect("pwru-rs exits");
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let text = std::fs::read_to_string(stopped.dir.join("out.jsonl")).unwrap();
    let events: Vec<JsonEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!events.is_empty(), "nothing traced: {}", stopped.stderr);
    let b = net.b.inode() as u32;
    assert!(
        events.iter().all(|e| e.netns == b),
        "events of other netns than the pod's ({b}): {text}"
    );
    // And each event names the pod its netns is (JSON `pod`, `k8s_namespace`).
    assert!(
        events
            .iter()
            .all(|e| e.pod.as_deref() == Some("web")
                && e.k8s_namespace.as_deref() == Some("default")),
        "events without their pod: {text}"
    );
    assert!(
        stopped.stderr.contains(&format!("uid {UID}, process 4242")),
        "{}",
        stopped.stderr
    );
}

#[test]
fn a_pod_the_node_does_not_have_is_one_error() {
    require_root();
    let node = fake_node("/proc/self/ns/net");
    let out = run_within(
        Command::new(pwru_bin())
            .env(TEST_HOST_ROOT, node.path())
            .args([
                "--backend",
                "tracepoint",
                "--filter-pod",
                "default/nope",
                "icmp",
            ]),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("--filter-pod default/nope: no such pod on this node"),
        "{stderr}"
    );
}
