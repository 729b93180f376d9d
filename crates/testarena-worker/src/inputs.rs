//! What a queue reads from its checkout and its steps: scenario files and
//! the JUnit files of `<run junit>` (regular files inside the checkout,
//! size-limited like scenario files), and the environment an
//! `env_script` exports.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use testarena_domain::junit::{self, read::JunitCase, read::MAX_JUNIT_BYTES};
use testarena_domain::paths::{self, Confinement};
use testarena_domain::scenario::MAX_SCENARIO_BYTES;

/// Reads a scenario file from the checkout. Refuses what is not a regular
/// file inside the checkout (a symbolic link pointing out of it) and files
/// over the parser's limit; the message says which.
pub(crate) fn read_scenario(workspace: &Path, file: &str) -> std::result::Result<Vec<u8>, String> {
    let (real, meta) = paths::confined_file(workspace, file).map_err(|e| match e {
        Confinement::NotFound => format!("{file}: not found in the checkout"),
        Confinement::Outside => format!("{file}: leads out of the checkout"),
        Confinement::NotAFile => format!("{file}: not a regular file"),
        Confinement::Io(e) => format!("{file}: {e}"),
    })?;
    if meta.len() > MAX_SCENARIO_BYTES as u64 {
        return Err(format!(
            "{file}:1: file is {} bytes; scenario files are limited to 1 MiB",
            meta.len()
        ));
    }
    std::fs::read(&real).map_err(|e| format!("{file}: {e}"))
}

/// Reads and parses the JUnit file a `<run junit="...">` command wrote:
/// a regular file inside the checkout, at most the reader's limit. The
/// message says what is wrong, naming the file.
pub(crate) fn read_junit(workspace: &Path, file: &str) -> Result<Vec<JunitCase>, String> {
    let (real, meta) = paths::confined_file(workspace, file).map_err(|e| match e {
        Confinement::NotFound => {
            format!("JUnit file {file}: not found (did the command write it?)")
        }
        Confinement::Outside => format!("JUnit file {file}: leads out of the checkout"),
        Confinement::NotAFile => format!("JUnit file {file}: not a regular file"),
        Confinement::Io(e) => format!("JUnit file {file}: {e}"),
    })?;
    if meta.len() > MAX_JUNIT_BYTES as u64 {
        return Err(format!(
            "JUnit file {file}: file is {} bytes; JUnit files are limited to 1 MiB",
            meta.len()
        ));
    }
    let bytes = std::fs::read(&real).map_err(|e| format!("JUnit file {file}: {e}"))?;
    junit::read::read(&bytes).map_err(|e| format!("JUnit file {file}: {e}"))
}

/// Parses `env -0` output. Variables that describe the capturing shell
/// rather than the environment are left out.
pub(crate) fn parse_env(bytes: Vec<u8>) -> Vec<(OsString, OsString)> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let eq = entry.iter().position(|b| *b == b'=')?;
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            let skip: [&[u8]; 5] = [b"", b"PWD", b"OLDPWD", b"SHLVL", b"_"];
            (!skip.contains(&name)).then(|| {
                (
                    OsString::from_vec(name.to_vec()),
                    OsString::from_vec(value.to_vec()),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_output_parses() {
        let env = parse_env(b"A=1\0PWD=/x\0B=x=y\0EMPTY=\0_=/bin/env\0\0".to_vec());
        assert_eq!(
            env,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("EMPTY".into(), "".into()),
            ]
        );
    }

    #[test]
    fn scenarios_must_stay_in_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("sc")).unwrap();
        std::fs::write(ws.join("sc/a.xml"), "<x/>").unwrap();
        std::fs::write(dir.path().join("secret.xml"), "<s/>").unwrap();
        std::os::unix::fs::symlink("../secret.xml", ws.join("out.xml")).unwrap();
        std::os::unix::fs::symlink("sc/a.xml", ws.join("in.xml")).unwrap();
        assert_eq!(read_scenario(&ws, "sc/a.xml").unwrap(), b"<x/>");
        assert_eq!(read_scenario(&ws, "in.xml").unwrap(), b"<x/>");
        assert_eq!(
            read_scenario(&ws, "out.xml").unwrap_err(),
            "out.xml: leads out of the checkout"
        );
        assert_eq!(
            read_scenario(&ws, "../secret.xml").unwrap_err(),
            "../secret.xml: leads out of the checkout"
        );
        assert_eq!(
            read_scenario(&ws, "nope.xml").unwrap_err(),
            "nope.xml: not found in the checkout"
        );
        assert_eq!(
            read_scenario(&ws, "sc").unwrap_err(),
            "sc: not a regular file"
        );
        std::fs::write(ws.join("big.xml"), vec![b' '; MAX_SCENARIO_BYTES + 1]).unwrap();
        assert_eq!(
            read_scenario(&ws, "big.xml").unwrap_err(),
            format!(
                "big.xml:1: file is {} bytes; scenario files are limited to 1 MiB",
                MAX_SCENARIO_BYTES + 1
            )
        );
    }

    #[test]
    fn junit_files_must_exist_stay_inside_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(dir.path().join("out.xml"), "<testsuite/>").unwrap();
        std::os::unix::fs::symlink("../out.xml", ws.join("out.xml")).unwrap();
        std::fs::write(
            ws.join("ok.xml"),
            "<testsuite><testcase name=\"a\"/></testsuite>",
        )
        .unwrap();
        std::fs::write(ws.join("bad.xml"), "<testsuite>").unwrap();
        assert_eq!(read_junit(&ws, "ok.xml").unwrap()[0].name, "a");
        assert_eq!(
            read_junit(&ws, "none.xml").unwrap_err(),
            "JUnit file none.xml: not found (did the command write it?)"
        );
        assert_eq!(
            read_junit(&ws, "out.xml").unwrap_err(),
            "JUnit file out.xml: leads out of the checkout"
        );
        assert!(
            read_junit(&ws, "bad.xml")
                .unwrap_err()
                .starts_with("JUnit file bad.xml: line 1: not well-formed XML"),
        );
        std::fs::write(ws.join("big.xml"), vec![b' '; MAX_JUNIT_BYTES + 1]).unwrap();
        assert!(
            read_junit(&ws, "big.xml")
                .unwrap_err()
                .contains("limited to 1 MiB")
        );
    }
}
