//! A tiny writer for the `newc` cpio format the kernel unpacks as its initramfs.
//!
//! Written here rather than driving `cpio(1)` from a staging directory so that the archive holds
//! exactly what we list: owners are root, mtimes are zero, device nodes need no privileges, and
//! host-side symlinks (merged /usr) cannot leak into the guest layout.

use std::{collections::BTreeMap, io::Write, path::Path};

use anyhow::Context;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

enum Body {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

struct Entry {
    perm: u32,
    body: Body,
}

/// Entries keyed by their absolute guest path. Paths order component-wise, so a directory is
/// always written before what it contains (the kernel does not create missing parents).
#[derive(Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// Adds `path` and every missing parent directory. A later entry replaces an earlier one.
    fn insert(&mut self, path: &str, perm: u32, body: Body) {
        let path = path.trim_end_matches('/');
        assert!(path.starts_with('/'), "guest paths are absolute: {path}");
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.and_then(Path::to_str).filter(|d| *d != "/") {
            self.entries.entry(dir.to_owned()).or_insert(Entry {
                perm: 0o755,
                body: Body::Dir,
            });
            parent = Path::new(dir).parent();
        }
        self.entries.insert(path.to_owned(), Entry { perm, body });
    }

    pub fn dir(&mut self, path: &str) {
        self.insert(path, 0o755, Body::Dir);
    }

    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) {
        self.insert(path, perm, Body::File(data));
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert(path, 0o777, Body::Symlink(target.to_owned()));
    }

    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.insert(path, perm, Body::CharDev { major, minor });
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// Copies a host file (following symlinks) to `guest`, keeping its permission bits.
    pub fn host_file(&mut self, host: &Path, guest: &str) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let data =
            std::fs::read(host).with_context(|| format!("cannot read {}", host.display()))?;
        let perm = std::fs::metadata(host)?.permissions().mode() & 0o7777;
        self.file(guest, perm, data);
        Ok(())
    }

    /// The whole archive, trailer included. Its length is a multiple of 4 (every record is padded),
    /// which is what lets another archive follow it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let (kind, data, rdev) = match &entry.body {
                Body::Dir => (S_IFDIR, &[][..], (0, 0)),
                Body::File(data) => (S_IFREG, &data[..], (0, 0)),
                Body::Symlink(target) => (S_IFLNK, target.as_bytes(), (0, 0)),
                Body::CharDev { major, minor } => (S_IFCHR, &[][..], (*major, *minor)),
            };
            let header = Header {
                ino,
                mode: kind | entry.perm,
                nlink: if kind == S_IFDIR { 2 } else { 1 },
                size: data.len(),
                rdev,
            };
            record(&mut out, &header, &path[1..], data);
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            size: 0,
            rdev: (0, 0),
        };
        record(&mut out, &trailer, "TRAILER!!!", &[]);
        out
    }
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
}

fn record(out: &mut Vec<u8>, h: &Header, name: &str, data: &[u8]) {
    let size = u32::try_from(h.size).expect("initramfs members are smaller than 4 GiB");
    let name_size = u32::try_from(name.len() + 1).expect("short names");
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
    // rdevminor, namesize, check
    let fields = [
        h.ino, h.mode, 0, 0, h.nlink, 0, size, 0, 0, h.rdev.0, h.rdev.1, name_size, 0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        write!(out, "{field:08x}").expect("writing to a Vec cannot fail");
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Zero-pads to a 4-byte boundary: newc aligns every header and body, and so the kernel finds a
/// second, concatenated archive right after the first.
fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, body) of each record, read back as the kernel would.
    fn records(mut bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(&bytes[..6], b"070701");
            let field = |i: usize| {
                let hex = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap();
                usize::from_str_radix(hex, 16).unwrap()
            };
            let (mode, size, name_size) = (field(1), field(6), field(11));
            let name = String::from_utf8(bytes[110..110 + name_size - 1].to_vec()).unwrap();
            let body_at = (110 + name_size).next_multiple_of(4);
            let body = bytes[body_at..body_at + size].to_vec();
            bytes = &bytes[(body_at + size).next_multiple_of(4)..];
            out.push((name, mode as u32, body));
        }
        out
    }

    #[test]
    fn parents_come_first_and_records_are_aligned() {
        let mut a = Archive::default();
        a.file("/usr/bin/x", 0o755, b"abc".to_vec());
        a.symlink("/bin", "usr/bin");
        a.char_dev("/dev/console", 0o600, 5, 1);
        let bytes = a.to_bytes();
        assert_eq!(bytes.len() % 4, 0);
        let records = records(&bytes);
        let names: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "dev/console",
                "usr",
                "usr/bin",
                "usr/bin/x",
                "TRAILER!!!"
            ]
        );
        assert_eq!(records[0].1, S_IFLNK | 0o777);
        assert_eq!(records[0].2, b"usr/bin");
        assert_eq!(records[4].1, S_IFDIR | 0o755);
        assert_eq!(records[5].1, S_IFREG | 0o755);
        assert_eq!(records[5].2, b"abc");
    }
}
