//! Asking a person before a command destroys something; scripts pass `--confirm` instead.

use std::io::IsTerminal;

use anyhow::bail;

/// Goes ahead when `confirmed` (`--confirm`) or when the person at the terminal answers yes to `question`;
/// otherwise an error naming `what` and the flag.
pub(crate) fn confirm(confirmed: bool, what: &str, question: &str) -> anyhow::Result<()> {
    if confirmed {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("deleting {what} needs confirmation: pass --confirm");
    }
    eprint!("{question} (y/N) ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not deleted");
    }
    Ok(())
}
