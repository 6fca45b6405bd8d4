//! `--ready-file`: exists while every probe is attached (placeholder until the ready-file
//! contract lands).

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::Context;

/// What was attached.
pub struct ReadyInfo {
    pub backend: &'static str,
    pub hooks: usize,
    pub skipped: usize,
}

pub struct ReadyFile(Option<PathBuf>);

impl ReadyFile {
    pub fn create(path: Option<&Path>, _info: &ReadyInfo) -> anyhow::Result<Self> {
        if let Some(p) = path {
            File::create(p).with_context(|| format!("cannot create ready file {}", p.display()))?;
        }
        Ok(Self(path.map(Path::to_owned)))
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
