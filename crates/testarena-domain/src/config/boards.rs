//! `[[boards]]` (DESIGN section 10): the development boards wired to a
//! worker host — a serial console, how to flash and reset each, an optional
//! power switch, its tags and its health check — with their validation and
//! the board placeholders `{serial}`, `{baud}` and `{board}`.

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// `[[boards]]`: one board on this worker host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// Unique in the farm; same rules as queue ids.
    pub id: String,
    /// The target profile that builds its firmware.
    pub target: String,
    /// The serial device, best a stable `/dev/serial/by-id/...` path.
    pub serial: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Writes the built image to the board; its output goes to `flash.log`.
    pub flash: Vec<String>,
    /// Resets the board. Without it the worker pulses DTR/RTS the way
    /// esptool's classic reset does (a pty has no modem lines: an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_off: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_flash_timeout")]
    pub flash_timeout_s: u64,
    /// How long a vanished serial device may take to come back.
    #[serde(default = "default_reenumerate")]
    pub reenumerate_s: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthConfig>,
}

/// A board's health check: a scenario the system user runs on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub repo: String,
    pub branch: String,
    pub scenario: String,
    /// Hours between checks; 0: only on `unknown`, after a fault and on request.
    #[serde(default = "default_every_h")]
    pub every_h: u32,
}

fn default_baud() -> u32 {
    115_200
}
fn default_flash_timeout() -> u64 {
    120
}
fn default_reenumerate() -> u64 {
    5
}
fn default_every_h() -> u32 {
    24
}

impl BoardConfig {
    /// Expands `{serial}`, `{baud}` and `{board}` in each element; the
    /// other placeholders are left for [`super::Placeholders::expand`].
    pub fn expand(&self, argv: &[String]) -> Vec<String> {
        let baud = self.baud.to_string();
        argv.iter()
            .map(|a| {
                a.replace("{serial}", &self.serial)
                    .replace("{baud}", &baud)
                    .replace("{board}", &self.id)
            })
            .collect()
    }

    /// The tags sorted and without duplicates, as stored.
    pub fn sorted_tags(&self) -> Vec<String> {
        let mut tags = self.tags.clone();
        tags.sort();
        tags.dedup();
        tags
    }
}

/// Checks `[[boards]]`, naming the key of the first bad value.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    use crate::validate::{is_valid_id, is_valid_name};
    let mut ids = std::collections::HashSet::new();
    for (i, board) in config.boards.iter().enumerate() {
        let key = format!("boards[{i}]");
        let bad =
            |field: &str, message: String| ConfigError::invalid(format!("{key}.{field}"), message);
        if !is_valid_id(&board.id) || board.id == "any" || board.id == "qemu" {
            return Err(bad(
                "id",
                format!(
                    "{:?} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}} and not be \"any\" or \"qemu\"",
                    board.id
                ),
            ));
        }
        if !ids.insert(board.id.as_str()) {
            return Err(bad("id", format!("{:?} is used twice", board.id)));
        }
        if !config.targets.contains_key(&board.target) {
            return Err(bad("target", format!("no target named {:?}", board.target)));
        }
        if board.serial.trim().is_empty() || !board.serial.starts_with('/') {
            return Err(bad("serial", "must be an absolute device path".into()));
        }
        if board.baud == 0 {
            return Err(bad("baud", "must be at least 1".into()));
        }
        for (field, argv) in [
            ("flash", Some(&board.flash)),
            ("reset", board.reset.as_ref()),
            ("power_on", board.power_on.as_ref()),
            ("power_off", board.power_off.as_ref()),
        ] {
            if argv.is_some_and(|a| a.is_empty() || a[0].is_empty()) {
                return Err(bad(field, "must name a command".into()));
            }
        }
        for tag in &board.tags {
            if !is_valid_name(tag) || tag.contains(',') {
                return Err(bad(
                    "tags",
                    format!("{tag:?} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"),
                ));
            }
        }
        if board.flash_timeout_s == 0 {
            return Err(bad("flash_timeout_s", "must be at least 1".into()));
        }
        if let Some(health) = &board.health {
            if config.repo(Some(&health.repo)).is_none() {
                return Err(bad(
                    "health.repo",
                    format!("no repository named {:?}", health.repo),
                ));
            }
            crate::validate::branch("branch", &health.branch)
                .map_err(|e| bad("health.branch", e.to_string()))?;
            crate::validate::scenario_path("scenario", &health.scenario)
                .map_err(|e| bad("health.scenario", e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    const BASE: &str = "home = \"/h\"\n[[repos]]\nname = \"firmware\"\nurl = \"/r\"\n";
    const BOARD: &str = "[[boards]]\nid = \"devkit-01\"\ntarget = \"esp32\"\n\
        serial = \"/dev/serial/by-id/usb-x\"\nflash = [\"esptool.py\", \"-p\", \"{serial}\", \"-b\", \"{baud}\", \"{build_dir}/x.bin\"]\n";

    fn load(extra: &str) -> Result<Config, ConfigError> {
        let mut c = Config::parse(&format!("{BASE}{extra}"), Path::new("t.toml"))?;
        c.finish()?;
        Ok(c)
    }

    fn key_of(extra: &str) -> String {
        match load(extra) {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(ConfigError::Parse { message, .. }) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_board_parses_with_its_defaults_and_placeholders() {
        let c = load(BOARD).unwrap();
        let b = &c.boards[0];
        assert_eq!(
            (b.baud, b.flash_timeout_s, b.reenumerate_s),
            (115_200, 120, 5)
        );
        assert_eq!(
            b.expand(&b.flash),
            [
                "esptool.py",
                "-p",
                "/dev/serial/by-id/usb-x",
                "-b",
                "115200",
                "{build_dir}/x.bin"
            ]
        );
        assert_eq!(b.expand(&["{board}".to_owned()]), ["devkit-01"]);
    }

    #[test]
    fn bad_boards_are_refused_naming_the_key() {
        assert!(key_of(&format!("{BOARD}bogus = 1\n")).contains("bogus"));
        assert_eq!(key_of(&BOARD.replace("esp32", "nope")), "boards[0].target");
        assert_eq!(key_of(&format!("{BOARD}{BOARD}")), "boards[1].id");
        assert_eq!(key_of(&BOARD.replace("devkit-01", "any")), "boards[0].id");
        assert_eq!(
            key_of(&BOARD.replace("/dev/serial/by-id/usb-x", "ttyUSB0")),
            "boards[0].serial"
        );
        assert_eq!(key_of(&format!("{BOARD}reset = []\n")), "boards[0].reset");
        assert_eq!(
            key_of(&format!("{BOARD}tags = [\"a,b\"]\n")),
            "boards[0].tags"
        );
        assert_eq!(key_of(&format!("{BOARD}baud = 0\n")), "boards[0].baud");
        let health = "health = { repo = \"other\", branch = \"main\", scenario = \"h.xml\" }\n";
        assert_eq!(key_of(&format!("{BOARD}{health}")), "boards[0].health.repo");
        let health =
            "health = { repo = \"firmware\", branch = \"main\", scenario = \"../h.xml\" }\n";
        assert_eq!(
            key_of(&format!("{BOARD}{health}")),
            "boards[0].health.scenario"
        );
    }
}
