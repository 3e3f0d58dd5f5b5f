//! The processes `apiserver.sh` starts are not our children: they are
//! found, and stopped, by process id, and only while their command line
//! names the server's own state folder.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::super::{command, try_poll};

/// How long a stopped process may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// The command line of process `pid`, from /proc.
pub(super) fn read_cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_else(|e| panic!("cannot read kube-apiserver's command line: {e}"));
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        argv.first().is_some_and(|a| a.ends_with("kube-apiserver")),
        "process {pid} is not kube-apiserver: {argv:?}"
    );
    argv
}

/// SIGTERM to `pid` (a process `apiserver.sh` started, not our child), then
/// SIGKILL if it is still there after [`EXIT_TIMEOUT`]; returns once it is
/// gone. Only while its command line names `dir` (its state folder): a
/// process that exited long ago may have left its id to another one.
pub(super) fn kill_and_wait(pid: u32, dir: &Path) {
    // apiserver.sh names the folder as `cd DIR && pwd` prints it.
    let names: Vec<String> = [Some(dir.to_path_buf()), std::fs::canonicalize(dir).ok()]
        .into_iter()
        .flatten()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    let ours = || {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            names.iter().any(|d| c.contains(d.as_str()))
        })
    };
    let running = || {
        // A zombie (state Z) waits only for its reaper: it is gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        }) && ours()
    };
    let signal = |sig: &str| {
        if ours() {
            let _ = command("kill")
                .args([sig, &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    };
    signal("-TERM");
    if try_poll(EXIT_TIMEOUT, || (!running()).then_some(())).is_none() {
        signal("-KILL");
        let _ = try_poll(EXIT_TIMEOUT, || (!running()).then_some(()));
    }
}
