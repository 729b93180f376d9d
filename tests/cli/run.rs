//! Running the real `testarena` binary: to its end within a deadline, or
//! in the background with its output read line by line as it comes.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::support::{DEADLINE, wait_for};

/// How to run the `testarena` binary.
#[derive(Debug, Clone)]
pub struct Cli {
    /// `XDG_CONFIG_HOME` and `HOME` live under it.
    root: PathBuf,
    url: String,
    token: Option<String>,
}

impl Cli {
    pub fn new(dir: &Path, url: &str, token: Option<&str>) -> Self {
        Self {
            root: dir.to_owned(),
            url: url.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("xdg/testarena/config.toml")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_testarena"));
        cmd.args(args)
            .env_remove("TESTARENA_TOKEN")
            .env_remove("NO_COLOR")
            .env("TESTARENA_URL", &self.url)
            .env("XDG_CONFIG_HOME", self.root.join("xdg"))
            .env("HOME", &self.root)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null());
        if let Some(token) = &self.token {
            cmd.env("TESTARENA_TOKEN", token);
        }
        cmd
    }

    /// Runs to the end (within the deadline).
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_input(self.cmd(args), "")
    }

    /// Runs to the end with `input` on standard input.
    pub fn run_input(&self, args: &[&str], input: &str) -> Output {
        run_with_input(self.cmd(args), input)
    }

    /// Starts it, reading its standard output line by line as it comes.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut cmd = self.cmd(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines: Some(lines),
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }
}

/// What a finished run left.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

fn run_with_input(mut cmd: Command, input: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let mut pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipes.0.read_to_string(&mut text);
        text
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipes.1.read_to_string(&mut text);
        text
    });
    let mut running = Running {
        child,
        lines: None,
        seen: Vec::new(),
        stderr: None,
    };
    let code = running.wait(DEADLINE);
    Output {
        code,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A `testarena` still running; killed when dropped.
pub struct Running {
    child: Child,
    /// Standard output's lines, when read as they come.
    lines: Option<Receiver<String>>,
    /// Every line of standard output received so far.
    pub seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Waits for a line of standard output that `pred` accepts.
    pub fn line(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let lines = self.lines.as_ref().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what} within {timeout:?}; got {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the exit; `None` if killed by a signal.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let status = wait_for(timeout, "testarena to exit", || {
            self.child.try_wait().unwrap()
        });
        status.code()
    }

    /// Waits for the exit and returns the code, the rest of standard
    /// output and standard error.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let code = self.wait(timeout);
        // The pipe closed with the exit: take what is still in flight.
        if let Some(lines) = &self.lines {
            while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
                self.seen.push(line);
            }
        }
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        Output {
            code,
            stdout: self.seen.join("\n"),
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
