//! Target profiles: the `[targets.*]` tables a farm's config ends with.
//! The lx106 one is `tests/fixtures/lx106.toml`, the same file the scripts
//! and the browser tests append to their configs.

/// `[targets.lx106]`: make with the lx106 cross-compiler, QEMU's `sim`
/// machine with semihosting (docs/LX106.md).
pub const LX106: &str = include_str!("../../../tests/fixtures/lx106.toml");

/// The lx106 profile as a target named `name`, with `extra` lines (more
/// keys of the same table, e.g. an `image` step) appended.
pub fn lx106_as(name: &str, extra: &str) -> String {
    let mut text = LX106.replace("[targets.lx106]", &format!("[targets.{name}]"));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(extra);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A target whose build and boot do nothing (`true`, `false`): for
/// scenarios made only of `<run>` tests.
pub fn noop(name: &str) -> String {
    format!("[targets.{name}]\nbuild = [\"true\"]\nqemu = [\"false\"]\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lx106_profile_is_one_table_that_can_be_renamed() {
        assert_eq!(super::LX106.matches("[targets.").count(), 1);
        assert!(super::LX106.contains("\"-cpu\", \"lx106\""));
        let gated = super::lx106_as("gated", "image = [\"true\"]");
        assert!(gated.contains("[targets.gated]"));
        assert!(gated.trim_end().ends_with("image = [\"true\"]"));
    }
}
