//! The terminal picture of a remediation plan: per change candidate the command, what
//! it will not revert, what Devloom cannot show, and the diff (red `-`, green `+` on a
//! terminal; plain signs everywhere) with line numbers.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use devloom_schemas::{FileDiff, LineTag, RemediationPlan};

/// Diff lines drawn per file; the JSON output keeps them all.
const MAX_LINES_SHOWN: usize = 40;

/// The plan as text, in colour when `color`.
pub fn render_remediation(plan: &RemediationPlan, color: bool) -> String {
    let paint =
        |style: Style, text: &str| if color { format!("{style}{text}{style:#}") } else { text.to_string() };
    let warn = AnsiColor::Yellow.on_default().bold();
    let mut text =
        format!("   remediations v{} (from candidates v{}):\n", plan.version, plan.candidates_version);
    if plan.remediations.is_empty() {
        text.push_str("   (none: no change is a candidate any more)\n");
    }
    for r in &plan.remediations {
        let _ = writeln!(text, "   {}. {}  ({}, {:.1})", r.rank, r.summary, r.candidate, r.confidence);
        for command in &r.commands {
            let _ = writeln!(text, "      $ {command}");
        }
        for m in &r.manifests {
            let _ = writeln!(text, "        ({} is the previous manifest: `manifests` in the JSON)", m.file);
        }
        for object in &r.not_reverted {
            let _ = writeln!(text, "      {}", paint(warn, &format!("⚠ {}", object.note)));
            for key in object.keys.iter().take(5) {
                let _ = writeln!(text, "          {key}");
            }
        }
        for note in r.gaps.iter().chain(&r.warnings) {
            let _ = writeln!(text, "      ! {note}");
        }
        for file in &r.files {
            render_file(&mut text, file, color);
        }
    }
    text
}

/// A plan whose remediations are as last drawn, only re-ranked or re-scored: one line.
pub fn render_rescored(plan: &RemediationPlan) -> String {
    let ranks: Vec<String> = plan
        .remediations
        .iter()
        .map(|r| format!("{}. {} ({:.1})", r.rank, r.candidate, r.confidence))
        .collect();
    format!("   remediations v{}: as above, now {}\n", plan.version, ranks.join(", "))
}

fn render_file(text: &mut String, file: &FileDiff, color: bool) {
    let _ = writeln!(text, "      ── {} ({:?}): -{} +{}", file.path, file.format, file.removed, file.added);
    for key in file.keys.iter().take(8) {
        let _ = writeln!(text, "         {key}");
    }
    if file.keys.len() > 8 {
        let _ = writeln!(text, "         … {} more keys", file.keys.len() - 8);
    }
    let (red, green) = (AnsiColor::Red.on_default(), AnsiColor::Green.on_default());
    let mut shown = 0;
    for hunk in &file.hunks {
        let _ = writeln!(
            text,
            "      @@ -{},{} +{},{} @@",
            hunk.old_start, hunk.old_lines, hunk.new_start, hunk.new_lines
        );
        for line in &hunk.lines {
            if shown == MAX_LINES_SHOWN {
                let total: usize = file.hunks.iter().map(|h| h.lines.len()).sum();
                let _ = writeln!(text, "      … {} more lines (the JSON output has them all)", total - shown);
                return;
            }
            shown += 1;
            let number = |n: Option<u32>| n.map_or_else(|| "    ".to_string(), |n| format!("{n:>4}"));
            let (sign, style) = match line.tag {
                LineTag::Context => (' ', None),
                LineTag::Removed => ('-', Some(red)),
                LineTag::Added => ('+', Some(green)),
            };
            let body = format!("{sign}{}", line.text);
            let body = match style {
                Some(s) if color => format!("{s}{body}{s:#}"),
                _ => body,
            };
            let _ = writeln!(text, "      {} {} {body}", number(line.old_line), number(line.new_line));
        }
    }
}
