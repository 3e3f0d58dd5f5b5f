//! etcd on loopback: [`Cluster`] starts N members of Debian's etcd 3.4
//! with their data in a tempdir, stops and restarts them with the same
//! data, and kills them all when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};

use super::super::{COMMAND_TIMEOUT, Out, command, free_port, http_get, run_bounded, try_poll};
use super::HEALTHY_TIMEOUT;

/// One etcd member: its name, ports and data directory, and its process
/// while it runs.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.client_port).into()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the member answers `/health` with `true` (it has a leader).
    pub fn healthy(&self) -> bool {
        matches!(http_get(self.addr(), "/health"), Ok((200, body)) if body.contains("\"true\""))
    }
}

/// An etcd cluster on loopback; every member is killed when it is dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub members: Vec<Member>,
    initial_cluster: String,
}

impl Cluster {
    /// Starts `n` members and waits until every one is healthy. The ports
    /// are picked free but not held until etcd binds them, so another test
    /// may take one in between: then the cluster starts again on new ports
    /// (at most three times).
    pub fn start(n: usize) -> Cluster {
        for _ in 0..2 {
            let c = Cluster::spawn_all(n);
            let up = try_poll(HEALTHY_TIMEOUT, || {
                (0..n).all(|i| c.members[i].healthy()).then_some(())
            });
            if up.is_some() {
                return c;
            }
            if !c.lost_a_port() {
                c.wait_healthy(&(0..n).collect::<Vec<_>>());
            }
            eprintln!(
                "an etcd port was taken by someone else; starting the cluster again on new ports"
            );
        }
        let c = Cluster::spawn_all(n);
        c.wait_healthy(&(0..n).collect::<Vec<_>>());
        c
    }

    /// Whether a member failed because its port was taken meanwhile.
    fn lost_a_port(&self) -> bool {
        self.members.iter().any(|m| {
            std::fs::read_to_string(&m.log).is_ok_and(|l| l.contains("address already in use"))
        })
    }

    fn spawn_all(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let name = format!("n{}", i + 1);
                Member {
                    data_dir: dir.path().join(&name),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: free_port(),
                    peer_port: free_port(),
                    child: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            dir,
            members,
            initial_cluster,
        };
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        assert!(m.child.is_none(), "{} is already running", m.name);
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .unwrap();
        // Scrubbed: etcd takes every flag from an `ETCD_*` variable too.
        let mut cmd = command("etcd");
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "gatehouse-test"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd (is etcd-server installed?): {e}"));
        self.members[i].child = Some(child);
    }

    /// Waits until each member in `idx` answers `/health` with `true`.
    #[track_caller]
    pub fn wait_healthy(&self, idx: &[usize]) {
        let ok = try_poll(HEALTHY_TIMEOUT, || {
            idx.iter().all(|&i| self.members[i].healthy()).then_some(())
        });
        if ok.is_none() {
            let logs: Vec<String> = idx
                .iter()
                .map(|&i| {
                    let m = &self.members[i];
                    let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                    let tail: String = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                    format!("--- {} (last lines, newest first)\n{tail}", m.name)
                })
                .collect();
            panic!(
                "etcd members {idx:?} not healthy within {HEALTHY_TIMEOUT:?}\n{}",
                logs.join("\n")
            );
        }
    }

    /// Kills member `i` (as a crash would) and reaps it.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again with the same name, ports and data; waits
    /// until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(&[i]);
    }

    /// Starts the stopped members in `idx` together (one alone has no
    /// quorum) and waits until they are all healthy.
    pub fn restart_all(&mut self, idx: &[usize]) {
        for &i in idx {
            self.spawn(i);
        }
        self.wait_healthy(idx);
    }

    /// `HOST:PORT,...` of the members in `idx`.
    pub fn endpoints_of(&self, idx: &[usize]) -> String {
        idx.iter()
            .map(|&i| self.members[i].endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn endpoints(&self) -> String {
        self.endpoints_of(&(0..self.members.len()).collect::<Vec<_>>())
    }

    /// The store URL naming every member.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoints())
    }

    /// The store URL naming only the members in `idx`.
    pub fn url_of(&self, idx: &[usize]) -> String {
        format!("etcd://{}", self.endpoints_of(idx))
    }

    /// `etcdctl --endpoints <running members> ARGS` (API v3).
    pub fn etcdctl(&self, args: &[&str]) -> Out {
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].running())
            .collect();
        let mut c = command("etcdctl");
        c.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoints_of(&running))
            .arg("--command-timeout=5s")
            .args(args);
        run_bounded(c, COMMAND_TIMEOUT)
    }

    /// The cluster's current revision.
    pub fn revision(&self) -> u64 {
        let out = self.etcdctl(&["get", "/", "-w", "json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["header"]["revision"].as_u64().unwrap()
    }

    /// The index of the member that is the Raft leader now.
    pub fn leader(&self) -> usize {
        let out = self.etcdctl(&["endpoint", "status", "-w", "json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let statuses = v.as_array().unwrap();
        let leader = statuses[0]["Status"]["leader"].as_u64().unwrap();
        let endpoint = statuses
            .iter()
            .find(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader))
            .and_then(|s| s["Endpoint"].as_str())
            .unwrap_or_else(|| panic!("no running member is the leader: {v}"))
            .to_owned();
        self.members
            .iter()
            .position(|m| endpoint.ends_with(&format!(":{}", m.client_port)))
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
    }
}
