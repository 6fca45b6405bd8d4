//! `--ready-file`: created once every probe is attached, removed on exit. It holds one JSON line
//! saying what was attached, so scripts and benchmarks need not read the log:
//!
//! ```json
//! {"backend":"tracepoint","hooks":30,"skipped":0}
//! ```
//!
//! `backend` is the backend in use, named as `--backend` names it (never `auto`); `hooks` the
//! functions or tracepoints attached; `skipped` the candidates that could not be attached (not
//! traceable, blacklisted or refused by the kernel; 0 for tracepoints). The file is written under
//! a temporary name in the same directory and renamed into place, so a reader that sees it sees
//! all of it.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The ready file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyInfo {
    pub backend: String,
    pub hooks: usize,
    pub skipped: usize,
}

/// The ready file; removed on drop.
pub struct ReadyFile(Option<PathBuf>);

impl ReadyFile {
    /// Writes `info` to `path` atomically (nothing to do without a path).
    pub fn create(path: Option<&Path>, info: &ReadyInfo) -> anyhow::Result<Self> {
        if let Some(p) = path {
            write_atomically(p, info)
                .with_context(|| format!("cannot create ready file {}", p.display()))?;
        }
        Ok(Self(path.map(Path::to_owned)))
    }
}

/// `--stats-file`: the run's figures, written at exit, for scripts and benchmarks:
///
/// ```json
/// {"backend":"kprobe-multi","hooks":1608,"skipped":93,"attach_ms":812.4,"link_ms":289.0,
///  "detach_ms":297.1,"received":211,"lost":0,"malformed":0}
/// ```
///
/// `attach_ms` runs from the first program load to the last attachment (BTF parsed before);
/// `link_ms` is the kprobe-multi link creation alone (null on other backends); `detach_ms` is
/// closing every attachment. `received`, `lost` and `malformed` count events as the summary line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStats {
    pub backend: String,
    pub hooks: usize,
    pub skipped: usize,
    pub attach_ms: f64,
    pub link_ms: Option<f64>,
    pub detach_ms: f64,
    pub received: u64,
    pub lost: u64,
    pub malformed: u64,
}

impl RunStats {
    /// Writes the stats to `path` atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        write_atomically(path, self)
            .with_context(|| format!("cannot write stats file {}", path.display()))
    }
}

fn write_atomically(path: &Path, info: &impl Serialize) -> anyhow::Result<()> {
    let name = path.file_name().context("the path names no file")?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut line = serde_json::to_vec(info)?;
    line.push(b'\n');
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&line));
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(renamed?)
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_line_in_place_and_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("pwru-rs-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ready");
        let info = ReadyInfo {
            backend: "kprobe".into(),
            hooks: 1458,
            skipped: 3,
        };
        let ready = ReadyFile::create(Some(&path), &info).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"backend\":\"kprobe\",\"hooks\":1458,\"skipped\":3}\n"
        );
        assert_eq!(serde_json::from_str::<ReadyInfo>(&text).unwrap(), info);
        // Nothing but the ready file: the temporary name is gone.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        drop(ready);
        assert!(!path.exists());
        std::fs::remove_dir(&dir).unwrap();
    }
}
