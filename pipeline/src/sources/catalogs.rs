//! Service catalog files (`--catalog FORMAT=PATH`): read into snapshots, one per
//! format, and put in force before the first input of an embedded run.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, bail};
use devloom_schemas::catalog::CatalogFormat;
use devloom_schemas::codec::catalog::{read_backstage, read_catalog};
use devloom_schemas::{Catalog, CatalogSnapshot, Event};

use crate::core::{Input, ReadStamp, Source};

/// `FORMAT=PATH`, as `--catalog` takes it.
pub fn parse_arg(text: &str) -> Result<(CatalogFormat, PathBuf), String> {
    let (format, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: give FORMAT=PATH, FORMAT one of backstage, pagerduty, devloom"))?;
    let format = match format {
        "backstage" => CatalogFormat::Backstage,
        "pagerduty" => CatalogFormat::Pagerduty,
        "devloom" => CatalogFormat::Devloom,
        other => return Err(format!("{other:?} is not a catalog format (backstage, pagerduty, devloom)")),
    };
    if path.is_empty() {
        return Err(format!("{text:?}: the path is empty"));
    }
    Ok((format, PathBuf::from(path)))
}

/// The catalog in `paths` (all of one format; Backstage references resolve across
/// them), with the files' texts. An error names the file, the document and the path in
/// it.
pub fn read_files(format: CatalogFormat, paths: &[PathBuf]) -> anyhow::Result<(Catalog, Vec<String>)> {
    let texts: Vec<String> = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading catalog {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    Ok((parse(format, paths, &texts)?, texts))
}

fn parse(format: CatalogFormat, paths: &[PathBuf], texts: &[String]) -> anyhow::Result<Catalog> {
    match format {
        CatalogFormat::Backstage => {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            read_backstage(&texts).map_err(|(i, e)| anyhow::anyhow!("{}: {e}", paths[i].display()))
        }
        _ => {
            let mut merged = Catalog::default();
            for (text, path) in texts.iter().zip(paths) {
                let c = read_catalog(format, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                merged.extend(c);
            }
            Ok(merged)
        }
    }
}

/// The newest modification time of `paths`, ns since epoch: a file's snapshot time, the
/// same on every run over the same files.
fn modified_ns(paths: &[PathBuf]) -> u64 {
    let at = |p: &Path| p.metadata().and_then(|m| m.modified()).ok()?.duration_since(UNIX_EPOCH).ok();
    paths.iter().filter_map(|p| at(p)).map(|d| d.as_nanos() as u64).max().unwrap_or(0)
}

/// One snapshot per format of `args` (`FORMAT=PATH` each), sourced by the format's name.
pub fn snapshots(args: &[String]) -> anyhow::Result<Vec<CatalogSnapshot>> {
    let mut by_format: BTreeMap<CatalogFormat, Vec<PathBuf>> = BTreeMap::new();
    for arg in args {
        let (format, path) = parse_arg(arg).map_err(anyhow::Error::msg)?;
        by_format.entry(format).or_default().push(path);
    }
    let mut out = Vec::new();
    for (format, paths) in by_format {
        let (catalog, _) = read_files(format, &paths)?;
        if catalog.services.is_empty() && catalog.dependencies.is_empty() && catalog.names.is_empty() {
            bail!("{}: no services, dependencies or names in it", paths[0].display());
        }
        out.push(CatalogSnapshot {
            source: format.name().to_string(),
            format,
            time_ns: modified_ns(&paths),
            catalog,
        });
    }
    Ok(out)
}

/// `inner`, after the catalog snapshots.
pub struct WithCatalogs<S> {
    first: VecDeque<CatalogSnapshot>,
    inner: S,
}

impl<S: Source> WithCatalogs<S> {
    /// Yields `snapshots`, then `inner`'s inputs.
    pub fn new(snapshots: Vec<CatalogSnapshot>, inner: S) -> Self {
        Self { first: snapshots.into(), inner }
    }
}

impl<S: Source> Source for WithCatalogs<S> {
    fn next_input(&mut self) -> Option<std::io::Result<Input>> {
        match self.first.pop_front() {
            Some(s) => Some(Ok(Input::Record(vec![Event::Catalog(s)], ReadStamp::now()))),
            None => self.inner.next_input(),
        }
    }
}
