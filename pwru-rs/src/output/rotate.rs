//! `--output-file` with rotation, as pwru's (lumberjack): past `max_size` the file is renamed to
//! `name-<UTC timestamp>.ext` beside it and a new one started; old backups are pruned by count
//! and age, and optionally gzipped.
//!
//! Written here rather than with a crate: `file-rotate` splits a write at the byte limit (or
//! lets it run past), names backups `name.<ts>` and keeps either a count or an age, not both;
//! none of the crates looked at writes a header at the top of each new file. The sink hands over
//! whole lines, one batch per `write`, so rotating only between writes never splits an event.

use std::{
    ffi::OsString,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Lumberjack's megabyte.
pub const MEGABYTE: u64 = 1024 * 1024;

/// When to rotate and what to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write that would take the file past this many bytes.
    pub max_size: u64,
    /// Backups kept (0: all).
    pub max_backups: usize,
    /// Backups older than this (by the time in their name) are removed; `None`: no limit.
    pub max_age: Option<Duration>,
    /// gzip each backup (`name-<ts>.ext.gz`).
    pub compress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("cannot create {path}: {error}")]
    Create { path: PathBuf, error: io::Error },
    #[error("cannot move {path} aside to {backup}: {error}")]
    Rename {
        path: PathBuf,
        backup: PathBuf,
        error: io::Error,
    },
}

impl From<RotateError> for io::Error {
    fn from(e: RotateError) -> Self {
        io::Error::other(e.to_string())
    }
}

/// A file that rotates between writes. Each `write` call goes whole into one file.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    /// Written at the top of every file after the first (the sink writes the first one's).
    header: Vec<u8>,
    file: File,
    size: u64,
    /// Whether the current file holds anything besides the header.
    has_events: bool,
    /// Pruning and compression of backups, off the event loop: gzipping 100 MB takes seconds.
    mill: Option<JoinHandle<()>>,
    /// The time in the newest backup's name: the next one is named later, even when rotations
    /// come within a millisecond, so names keep the order of the files.
    last_backup: Option<SystemTime>,
}

impl RotatingFile {
    /// Creates `path`; a non-empty file already there becomes a backup first, so no earlier
    /// trace is lost and every file holds one session.
    pub fn create(path: &Path, rotation: Rotation, header: Vec<u8>) -> Result<Self, RotateError> {
        let mut last_backup = None;
        if fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0) {
            last_backup = Some(move_aside(path, None)?);
        }
        let rotated = last_backup.is_some();
        let file = create_file(path)?;
        let mut this = Self {
            path: path.to_owned(),
            rotation,
            header,
            file,
            size: 0,
            has_events: false,
            mill: None,
            last_backup,
        };
        if rotated {
            this.start_mill();
        }
        Ok(this)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.last_backup = Some(move_aside(&self.path, self.last_backup)?);
        self.file = create_file(&self.path)?;
        self.file.write_all(&self.header)?;
        self.size = self.header.len() as u64;
        self.has_events = false;
        self.start_mill();
        Ok(())
    }

    /// Prunes and compresses in the background; waits for the previous round first, so rounds
    /// never overlap.
    fn start_mill(&mut self) {
        self.wait_mill();
        let (path, rotation) = (self.path.clone(), self.rotation.clone());
        self.mill = Some(std::thread::spawn(move || {
            if let Err(e) = mill(&path, &rotation, SystemTime::now()) {
                log::warn!("--output-file backups of {}: {e}", path.display());
            }
        }));
    }

    fn wait_mill(&mut self) {
        if let Some(mill) = self.mill.take() {
            let _ = mill.join();
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A file holding only its header takes any write: rotating it would make an empty backup.
        if self.has_events && self.size + buf.len() as u64 > self.rotation.max_size {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        self.has_events |= !buf.is_empty();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        // No half-compressed backup left behind at exit.
        self.wait_mill();
    }
}

fn create_file(path: &Path) -> Result<File, RotateError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|error| RotateError::Create {
            path: path.to_owned(),
            error,
        })
}

/// `path` and its backups' naming: `dir/stem-<ts>ext`, `ext` with its dot (maybe empty).
struct Names {
    dir: PathBuf,
    stem: String,
    ext: String,
}

impl Names {
    fn of(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // As Go's filepath.Ext: from the last dot of the name.
        let (stem, ext) = match name.rfind('.') {
            Some(dot) => (name[..dot].to_owned(), name[dot..].to_owned()),
            None => (name, String::new()),
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Self { dir, stem, ext }
    }

    fn backup(&self, timestamp: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{timestamp}{}", self.stem, self.ext))
    }

    /// The timestamp of a backup's file name, and whether it is compressed.
    fn parse<'a>(&self, name: &'a str) -> Option<(&'a str, bool)> {
        let rest = name.strip_prefix(&self.stem)?.strip_prefix('-')?;
        let (rest, compressed) = match rest.strip_suffix(".gz") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let timestamp = rest.strip_suffix(self.ext.as_str())?;
        is_timestamp(timestamp).then_some((timestamp, compressed))
    }
}

/// Renames `path` to its backup name for now, or a millisecond after `after` or after a name
/// already taken; returns the time in the name.
fn move_aside(path: &Path, after: Option<SystemTime>) -> Result<SystemTime, RotateError> {
    let names = Names::of(path);
    let mut when = SystemTime::now();
    if let Some(after) = after {
        when = when.max(after + Duration::from_millis(1));
    }
    let backup = loop {
        let candidate = names.backup(&timestamp(when));
        let gz = {
            let mut s = OsString::from(candidate.as_os_str());
            s.push(".gz");
            PathBuf::from(s)
        };
        if !candidate.exists() && !gz.exists() {
            break candidate;
        }
        when += Duration::from_millis(1);
    };
    fs::rename(path, &backup).map_err(|error| RotateError::Rename {
        path: path.to_owned(),
        backup: backup.clone(),
        error,
    })?;
    Ok(when)
}

/// Lumberjack's backup time format, `2006-01-02T15-04-05.000`, in UTC: fixed width, so names
/// sort as their times do.
fn timestamp(when: SystemTime) -> String {
    let since = when.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (year, month, day) = super::clock::civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}.{:03}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

fn is_timestamp(s: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd-dd-dd.ddd";
    s.len() == SHAPE.len()
        && s.bytes().zip(SHAPE).all(|(c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        })
}

/// Removes the backups past `max_backups` (oldest first) or older than `max_age`, then
/// compresses the rest, as lumberjack's mill.
fn mill(path: &Path, rotation: &Rotation, now: SystemTime) -> io::Result<()> {
    let names = Names::of(path);
    let mut backups: Vec<(String, bool, PathBuf)> = Vec::new();
    for entry in fs::read_dir(&names.dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((ts, compressed)) = names.parse(&name) {
            backups.push((ts.to_owned(), compressed, entry.path()));
        }
    }
    // Newest first.
    backups.sort_by(|a, b| b.0.cmp(&a.0));
    let cutoff = rotation
        .max_age
        .map(|age| timestamp(now.checked_sub(age).unwrap_or(UNIX_EPOCH)));
    for (i, (ts, compressed, backup)) in backups.iter().enumerate() {
        let surplus = rotation.max_backups > 0 && i >= rotation.max_backups;
        let expired = cutoff.as_ref().is_some_and(|c| ts < c);
        if surplus || expired {
            fs::remove_file(backup)?;
        } else if rotation.compress && !compressed {
            compress(backup)?;
        }
    }
    Ok(())
}

/// `file` → `file.gz`, written under a temporary name first so a half-written one is never
/// taken for a backup.
fn compress(file: &Path) -> io::Result<()> {
    let with = |suffix: &str| {
        let mut s = OsString::from(file.as_os_str());
        s.push(suffix);
        PathBuf::from(s)
    };
    let (gz, partial) = (with(".gz"), with(".gz.partial"));
    let result = (|| {
        let mut encoder = flate2::write::GzEncoder::new(
            io::BufWriter::new(File::create(&partial)?),
            flate2::Compression::default(),
        );
        io::copy(&mut File::open(file)?, &mut encoder)?;
        encoder.finish()?.into_inner()?.sync_all()?;
        fs::rename(&partial, &gz)?;
        fs::remove_file(file)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("pwru-rs-rotate-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn rotation(max_size: u64, max_backups: usize) -> Rotation {
        Rotation {
            max_size,
            max_backups,
            max_age: None,
            compress: false,
        }
    }

    /// Backups, oldest first, each file's content (decompressed), then the current file.
    fn files(dir: &Path, name: &str) -> (Vec<(String, String)>, String) {
        let names = Names::of(&dir.join(name));
        let mut backups: Vec<(String, String)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| names.parse(n).is_some())
            .map(|n| {
                let bytes = fs::read(dir.join(&n)).unwrap();
                let text = if n.ends_with(".gz") {
                    let mut s = String::new();
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_string(&mut s)
                        .unwrap();
                    s
                } else {
                    String::from_utf8(bytes).unwrap()
                };
                (n, text)
            })
            .collect();
        backups.sort();
        (backups, fs::read_to_string(dir.join(name)).unwrap())
    }

    /// Batches of whole numbered lines, as the sink writes them.
    fn write_batches(file: &mut RotatingFile, batches: usize, lines_per_batch: usize) {
        let mut n = 0;
        for _ in 0..batches {
            let mut batch = String::new();
            for _ in 0..lines_per_batch {
                batch.push_str(&format!("event {n:06}\n"));
                n += 1;
            }
            file.write_all(batch.as_bytes()).unwrap();
        }
    }

    #[test]
    fn rotates_between_writes_with_header_and_keeps_every_line_in_order() {
        let dir = TempDir::new();
        let path = dir.0.join("trace.txt");
        let header = b"HEADER\n".to_vec();
        let mut file = RotatingFile::create(&path, rotation(100, 0), header.clone()).unwrap();
        // The sink writes the first file's header itself.
        file.write_all(&header).unwrap();
        // 13 bytes a line, 3 lines a batch: two batches never fit in 100 bytes with a header.
        write_batches(&mut file, 10, 3);
        drop(file);
        let (backups, current) = files(&dir.0, "trace.txt");
        assert!(backups.len() >= 4, "{backups:?}");
        let mut all = Vec::new();
        for (name, text) in backups
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .chain([("current", &current)])
        {
            assert!(text.len() as u64 <= 100, "{name}: {} bytes", text.len());
            let mut lines = text.lines();
            assert_eq!(
                lines.next(),
                Some("HEADER"),
                "{name} starts with the header"
            );
            let events: Vec<&str> = lines.collect();
            assert_eq!(events.len() % 3, 0, "{name}: a batch was split: {events:?}");
            all.extend(events);
        }
        let expected: Vec<String> = (0..30).map(|n| format!("event {n:06}")).collect();
        assert_eq!(all, expected, "every line once, in order");
        assert!(backups[0].0.starts_with("trace-") && backups[0].0.ends_with(".txt"));
    }

    #[test]
    fn a_write_larger_than_the_limit_goes_whole_into_a_new_file() {
        let dir = TempDir::new();
        let path = dir.0.join("big.jsonl");
        let mut file = RotatingFile::create(&path, rotation(10, 0), Vec::new()).unwrap();
        file.write_all(b"small\n").unwrap();
        file.write_all(b"a line of more than ten bytes\n").unwrap();
        file.write_all(b"x\n").unwrap();
        drop(file);
        let (backups, current) = files(&dir.0, "big.jsonl");
        let texts: Vec<&str> = backups.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["small\n", "a line of more than ten bytes\n"]);
        assert_eq!(current, "x\n");
    }

    #[test]
    fn keeps_only_the_newest_backups() {
        let dir = TempDir::new();
        let path = dir.0.join("out.jsonl");
        let mut file = RotatingFile::create(&path, rotation(20, 2), Vec::new()).unwrap();
        write_batches(&mut file, 8, 1);
        drop(file);
        let (backups, current) = files(&dir.0, "out.jsonl");
        let texts: Vec<&str> = backups.iter().map(|(_, t)| t.as_str()).collect();
        // 13-byte lines, 20 bytes a file: one line each; the last is current.
        assert_eq!(texts, ["event 000005\n", "event 000006\n"]);
        assert_eq!(current, "event 000007\n");
    }

    #[test]
    fn removes_backups_older_than_max_age_and_leaves_other_files() {
        let dir = TempDir::new();
        let path = dir.0.join("out.log");
        let old = dir.0.join("out-2001-01-01T00-00-00.000.log");
        let old_gz = dir.0.join("out-2001-01-02T00-00-00.000.log.gz");
        let unrelated = dir.0.join("out-notatime.log");
        for f in [&old, &old_gz, &unrelated] {
            fs::write(f, "old\n").unwrap();
        }
        let mut r = rotation(20, 0);
        r.max_age = Some(Duration::from_secs(86_400));
        let mut file = RotatingFile::create(&path, r, Vec::new()).unwrap();
        write_batches(&mut file, 2, 1);
        drop(file);
        assert!(!old.exists() && !old_gz.exists());
        assert!(unrelated.exists(), "not a backup name: left alone");
        let (backups, _) = files(&dir.0, "out.log");
        assert_eq!(backups.len(), 1, "{backups:?}");
    }

    #[test]
    fn compressed_backups_read_back() {
        let dir = TempDir::new();
        let path = dir.0.join("out.jsonl");
        let mut r = rotation(30, 0);
        r.compress = true;
        let mut file = RotatingFile::create(&path, r, Vec::new()).unwrap();
        write_batches(&mut file, 3, 2);
        drop(file);
        let (backups, current) = files(&dir.0, "out.jsonl");
        assert!(
            backups.iter().all(|(n, _)| n.ends_with(".jsonl.gz")),
            "{backups:?}"
        );
        let texts: Vec<&str> = backups.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "event 000000\nevent 000001\n",
                "event 000002\nevent 000003\n"
            ]
        );
        assert_eq!(current, "event 000004\nevent 000005\n");
    }

    #[test]
    fn an_existing_trace_becomes_a_backup() {
        let dir = TempDir::new();
        let path = dir.0.join("out");
        fs::write(&path, "earlier session\n").unwrap();
        let mut file = RotatingFile::create(&path, rotation(1000, 0), Vec::new()).unwrap();
        file.write_all(b"new\n").unwrap();
        drop(file);
        let (backups, current) = files(&dir.0, "out");
        assert_eq!(backups.len(), 1);
        assert_eq!(backups[0].1, "earlier session\n");
        assert_eq!(current, "new\n");
    }

    #[test]
    fn timestamps_are_lumberjacks() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(t), "2023-11-14T22-13-20.123");
        assert!(is_timestamp(&timestamp(t)));
        assert!(!is_timestamp("2023-11-14T22:13:20.123"));
        let names = Names::of(Path::new("/x/trace.tar.log"));
        assert_eq!(names.backup("T"), PathBuf::from("/x/trace.tar-T.log"));
        assert_eq!(
            names.parse("trace.tar-2023-11-14T22-13-20.123.log.gz"),
            Some(("2023-11-14T22-13-20.123", true))
        );
    }
}
