//! Figures, their targets, the table and `results.json`.

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

/// What a figure must reach.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    pub fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        }
    }

    fn show(self, unit: &str) -> String {
        match self {
            Target::AtMost(t) => format!("<= {} {unit}", num(t)),
            Target::AtLeast(t) => format!(">= {} {unit}", num(t)),
        }
    }
}

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// The scenario number and name, e.g. `1 pickup`.
    pub scenario: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub target: Option<Target>,
    /// `None` for figures without a target (context).
    pub met: Option<bool>,
    /// How many samples the figure is computed from.
    pub samples: usize,
    pub note: String,
}

/// The figures of one bench run.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: Vec<Figure>,
}

impl Report {
    /// Records a figure and prints it at once, so a long run shows progress.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call per figure reads best with every field in place"
    )]
    pub fn add(
        &mut self,
        scenario: &str,
        name: &str,
        value: f64,
        unit: &str,
        target: Option<Target>,
        samples: usize,
        note: impl Into<String>,
    ) {
        let figure = Figure {
            scenario: scenario.to_owned(),
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            target,
            met: target.map(|t| t.met(value)),
            samples,
            note: note.into(),
        };
        eprintln!(
            "  {:<44} {:>12} {:<6} {}",
            figure.name,
            num(value),
            figure.unit,
            verdict(&figure)
        );
        self.figures.push(figure);
    }

    /// The table, one line per figure, as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| scenario | figure | value | target | met | samples |\n|---|---|---:|---|---|---:|\n",
        );
        for f in &self.figures {
            out.push_str(&format!(
                "| {} | {} | {} {} | {} | {} | {} |\n",
                f.scenario,
                f.name,
                num(f.value),
                f.unit,
                f.target.map_or_else(|| "—".to_owned(), |t| t.show(&f.unit)),
                verdict(f),
                f.samples
            ));
        }
        let with_target: Vec<&Figure> = self.figures.iter().filter(|f| f.met.is_some()).collect();
        let met = with_target.iter().filter(|f| f.met == Some(true)).count();
        out.push_str(&format!("\n{met} of {} targets met.\n", with_target.len()));
        out
    }

    pub fn missed(&self) -> Vec<&Figure> {
        self.figures
            .iter()
            .filter(|f| f.met == Some(false))
            .collect()
    }

    /// Writes `results.json`: the machine, the settings and every figure.
    pub fn write_json(&self, path: &Path, settings: &serde_json::Value) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::json!({
            "generated_at": chrono::Utc::now(),
            "machine": machine(),
            "settings": settings,
            "figures": self.figures,
        });
        let mut file = std::fs::File::create(path)?;
        serde_json::to_writer_pretty(&mut file, &json)?;
        file.write_all(b"\n")?;
        Ok(())
    }
}

fn verdict(f: &Figure) -> &'static str {
    match f.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "—",
    }
}

/// A number with as many decimals as it deserves.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Cores, memory and CPU model, read from `/proc`.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    serde_json::json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "memory_mib": mem_kib / 1024,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        // Other work on the machine moves the figures: say how busy it was.
        "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_numbers() {
        assert!(Target::AtMost(50.0).met(50.0));
        assert!(!Target::AtMost(50.0).met(50.1));
        assert!(Target::AtLeast(10.0).met(12.0));
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.2345), "1.23");
        assert_eq!(num(5000.4), "5000");
        assert_eq!(num(3.0), "3");
    }
}
