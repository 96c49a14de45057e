//! Line diffs (the `similar` crate's Myers diff) as [`FileDiff`]s: structured hunks
//! with line numbers and context, and the same hunks as unified-diff text.

use std::fmt::Write as _;

use devloom_schemas::{DiffLine, FileDiff, Hunk, KeyChange, LineTag, SpecFormat};
use similar::{ChangeTag, TextDiff};

/// Limits of one diff.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Unchanged lines shown around each change.
    pub context_lines: usize,
    /// Diff lines kept per file; the rest is cut (and the diff marked truncated).
    pub max_lines: usize,
}

/// The diff from `current` to `target` (what the remediation would make of it).
pub fn file_diff(
    path: &str,
    format: SpecFormat,
    current: &str,
    target: &str,
    keys: Vec<KeyChange>,
    limits: Limits,
) -> FileDiff {
    let diff = TextDiff::from_lines(current, target);
    let (mut removed, mut added) = (0u32, 0u32);
    for change in diff.iter_all_changes() {
        match change.tag() {
            ChangeTag::Delete => removed += 1,
            ChangeTag::Insert => added += 1,
            ChangeTag::Equal => {}
        }
    }
    let mut hunks = Vec::new();
    let mut budget = limits.max_lines;
    let mut truncated = false;
    for group in diff.grouped_ops(limits.context_lines) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
        let (old, new) =
            (first.old_range().start..last.old_range().end, first.new_range().start..last.new_range().end);
        let mut lines = Vec::new();
        for op in &group {
            for change in diff.iter_changes(op) {
                if budget == 0 {
                    truncated = true;
                    break;
                }
                budget -= 1;
                lines.push(DiffLine {
                    tag: match change.tag() {
                        ChangeTag::Equal => LineTag::Context,
                        ChangeTag::Delete => LineTag::Removed,
                        ChangeTag::Insert => LineTag::Added,
                    },
                    old_line: change.old_index().map(|i| i as u32 + 1),
                    new_line: change.new_index().map(|i| i as u32 + 1),
                    text: change.value().trim_end_matches(['\n', '\r']).to_string(),
                });
            }
        }
        let (old_start, old_lines) = range(old.start, old.len());
        let (new_start, new_lines) = range(new.start, new.len());
        if !lines.is_empty() {
            hunks.push(Hunk { old_start, old_lines, new_start, new_lines, lines });
        }
        if truncated {
            break;
        }
    }
    let unified = unified(path, &hunks, truncated);
    FileDiff { path: path.to_string(), format, removed, added, keys, unified, hunks, truncated }
}

/// A hunk range as unified diffs number it: 1-based, or the line before when empty.
fn range(start: usize, len: usize) -> (u32, u32) {
    let start = if len == 0 { start } else { start + 1 };
    (start as u32, len as u32)
}

/// The hunks as unified-diff text (`a/`, `b/` = current, after the remediation).
fn unified(path: &str, hunks: &[Hunk], truncated: bool) -> String {
    if hunks.is_empty() {
        return String::new();
    }
    let mut text = format!("--- a/{path}\n+++ b/{path}\n");
    for h in hunks {
        let _ = writeln!(text, "@@ -{},{} +{},{} @@", h.old_start, h.old_lines, h.new_start, h.new_lines);
        for line in &h.lines {
            let sign = match line.tag {
                LineTag::Context => ' ',
                LineTag::Removed => '-',
                LineTag::Added => '+',
            };
            let _ = writeln!(text, "{sign}{}", line.text);
        }
    }
    if truncated {
        text.push_str("# … diff cut here (engine.remediation.max_diff_lines)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { context_lines: 1, max_lines: 100 };

    #[test]
    fn hunks_carry_line_numbers_and_context() {
        let d =
            file_diff("app.toml", SpecFormat::Toml, "a\nb\nc\nd\ne\n", "a\nb\nC\nd\ne\nf\n", vec![], LIMITS);
        assert_eq!((d.removed, d.added), (1, 2));
        assert_eq!(d.unified, "--- a/app.toml\n+++ b/app.toml\n@@ -2,4 +2,5 @@\n b\n-c\n+C\n d\n e\n+f\n");
        let h = &d.hunks[0];
        assert_eq!((h.old_start, h.old_lines, h.new_start, h.new_lines), (2, 4, 2, 5));
        let removed = &h.lines[1];
        assert_eq!(
            (removed.tag, removed.old_line, removed.new_line, removed.text.as_str()),
            (LineTag::Removed, Some(3), None, "c")
        );
    }

    #[test]
    fn equal_texts_have_no_hunks_and_long_diffs_are_cut() {
        assert!(file_diff("x", SpecFormat::Text, "a\n", "a\n", vec![], LIMITS).hunks.is_empty());
        let long: String = (0..50).map(|i| format!("{i}\n")).collect();
        let d =
            file_diff("x", SpecFormat::Text, &long, "", vec![], Limits { context_lines: 3, max_lines: 10 });
        assert!(d.truncated && d.hunks[0].lines.len() == 10 && d.removed == 50);
    }
}
