//! The command line as a whole: clap's own consistency checks over every
//! subcommand (two arguments with one id, for example, make clap panic when
//! a user types them), and every subcommand's `--help`.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::support::Site;
use clap::CommandFactory;

#[test]
fn clap_definition_is_consistent() {
    gatehouse::cli::Cli::command().debug_assert();
}

/// A global flag and a subcommand's own argument with the same id make clap
/// panic ("Mismatch between definition and access") when the subcommand runs.
#[test]
fn no_subcommand_argument_shares_an_id_with_a_global_flag() {
    let root = gatehouse::cli::Cli::command();
    let globals: Vec<String> = root
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    assert!(globals.iter().any(|g| g == "store"), "{globals:?}");
    let mut clashes = Vec::new();
    let mut stack: Vec<(String, clap::Command)> = root
        .get_subcommands()
        .map(|c| (c.get_name().to_owned(), c.clone()))
        .collect();
    while let Some((path, cmd)) = stack.pop() {
        for a in cmd.get_arguments() {
            if globals.iter().any(|g| g == a.get_id().as_str()) {
                clashes.push(format!("gatehouse {path}: {}", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
        }
    }
    assert!(
        clashes.is_empty(),
        "argument ids that are also global flags: {clashes:?}"
    );
}

#[test]
fn every_subcommand_has_help() {
    let env = Site::new();
    let mut stack = vec![(Vec::<String>::new(), gatehouse::cli::Cli::command())];
    while let Some((path, cmd)) = stack.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = env.cli(&args);
        out.ok();
        assert!(
            out.stdout.contains("Usage: gatehouse"),
            "{args:?}: {}",
            out.stdout
        );
        support::no_panic(&out.stderr);
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            stack.push((p, sub.clone()));
        }
    }
}
