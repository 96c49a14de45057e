//! Post-mortem drafts as Markdown, through a MiniJinja template: the built-in one
//! (`devloom postmortem template` prints it) or a team's own (`[postmortem] template`,
//! `--template`). The template sees the draft's JSON fields (`title`, `summary`,
//! `impact.services`, `timeline`, `root_cause`, …) and four filters: `duration`
//! (milliseconds → `4m 30s`), `percent` (a ratio → `4.1%`), and `cell` (text made safe
//! for a Markdown table cell), besides MiniJinja's built-in ones.

use std::path::Path;

use devloom_operators::postmortem::duration;
use devloom_schemas::PostmortemDraft;
use minijinja::Environment;

/// The built-in template.
pub const BUILTIN: &str = include_str!("../../templates/postmortem.md.j2");

/// A template that compiled.
#[derive(Debug)]
pub struct Template {
    env: Environment<'static>,
    name: String,
}

/// A template that does not compile or does not render.
#[derive(Debug, thiserror::Error)]
#[error("post-mortem template {name}: {message}")]
pub struct TemplateError {
    name: String,
    message: String,
}

impl Default for Template {
    fn default() -> Self {
        Self::from_source("(built in)", BUILTIN.to_string()).expect("the built-in template compiles")
    }
}

impl Template {
    /// The template in the file at `path`.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let name = path.display().to_string();
        let source = std::fs::read_to_string(path)
            .map_err(|e| TemplateError { name: name.clone(), message: e.to_string() })?;
        Self::from_source(&name, source)
    }

    /// `source`, checked by compiling it; `name` is what errors call it.
    pub fn from_source(name: &str, source: String) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.add_filter("duration", |ms: u64| duration(ms));
        env.add_filter("percent", |ratio: f64| format!("{:.1}%", ratio * 100.0));
        env.add_filter("cell", |text: String| text.replace('|', "\\|").replace(['\n', '\r'], " "));
        env.add_template_owned(name.to_string(), source).map_err(|e| error(name, &e))?;
        Ok(Self { env, name: name.to_string() })
    }

    /// The draft as Markdown.
    pub fn render(&self, draft: &PostmortemDraft) -> Result<String, TemplateError> {
        let template = self.env.get_template(&self.name).map_err(|e| error(&self.name, &e))?;
        template.render(draft).map_err(|e| error(&self.name, &e))
    }
}

/// MiniJinja's error with its line, and the cause chain.
fn error(name: &str, e: &minijinja::Error) -> TemplateError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    TemplateError { name: name.to_string(), message }
}
