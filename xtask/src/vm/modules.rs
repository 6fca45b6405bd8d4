//! Kernel modules for the guest, taken from the extracted kernel package. The .deb ships no
//! modules.dep (depmod runs at install time, and this host has no kmod), so dependencies and aliases
//! are read from each module's `.modinfo` section, and modules.dep / modules.alias are written here
//! for busybox modprobe, which the guest kernel calls to load modules on demand.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context};

use crate::cmd;

struct Module {
    /// Plain ELF: Debian 6.12 ships .ko.xz, and busybox insmod only takes uncompressed modules.
    pub data: Vec<u8>,
    depends: Vec<String>,
    aliases: Vec<String>,
}

/// A set of modules closed under dependencies, keyed by module name (`-` spelled `_`).
pub struct ModuleSet {
    modules: BTreeMap<String, Module>,
}

impl ModuleSet {
    /// `wanted` and everything they depend on, from `dir` (the package's lib/modules/<release>).
    pub fn read(dir: &Path, wanted: &[&str]) -> anyhow::Result<Self> {
        let files = index(dir)?;
        let mut modules = BTreeMap::new();
        let mut pending: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
        while let Some(name) = pending.pop() {
            if modules.contains_key(&name) {
                continue;
            }
            let path = files.get(&name).with_context(|| {
                format!("module {name} is not in this kernel package (built in?)")
            })?;
            let module =
                read_module(path).with_context(|| format!("reading {}", path.display()))?;
            pending.extend(module.depends.iter().cloned());
            modules.insert(name, module);
        }
        Ok(Self { modules })
    }

    /// (name, uncompressed ELF) of every module.
    pub fn into_files(self) -> impl Iterator<Item = (String, Vec<u8>)> {
        self.modules.into_iter().map(|(name, m)| (name, m.data))
    }

    /// `names` and their dependencies in the order insmod needs: dependencies first.
    pub fn load_order(&self, names: &[&str]) -> Vec<String> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            self.visit(name, &mut seen, &mut order);
        }
        order
    }

    fn visit(&self, name: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(name.to_owned()) {
            return;
        }
        for dep in self.modules.get(name).map_or(&[][..], |m| &m.depends) {
            self.visit(dep, seen, order);
        }
        order.push(name.to_owned());
    }

    /// `<name>.ko: <dep>.ko …` with every dependency, transitively, listed as depmod does: the
    /// one to load first comes last.
    pub fn modules_dep(&self) -> String {
        let mut out = String::new();
        for name in self.modules.keys() {
            let mut deps = self.load_order(&[name]);
            deps.pop(); // the module itself
            out.push_str(&format!("{name}.ko:"));
            for dep in deps.iter().rev() {
                out.push_str(&format!(" {dep}.ko"));
            }
            out.push('\n');
        }
        out
    }

    /// `alias <pattern> <name>`: how the kernel's requests (`nft-expr-ct`, `rtnl-link-veth`,
    /// `sch_clsact`, …) find their module.
    pub fn modules_alias(&self) -> String {
        let mut out = String::new();
        for (name, module) in &self.modules {
            for alias in &module.aliases {
                out.push_str(&format!("alias {alias} {name}\n"));
            }
        }
        out
    }
}

/// Module name → file, for every module under `dir`.
fn index(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut index = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(name) = module_name(&path) {
                index.insert(name, path);
            }
        }
    }
    Ok(index)
}

/// The kernel's name for a module file: no extension, `-` spelled `_`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

fn read_module(path: &Path) -> anyhow::Result<Module> {
    let data = decompressed(path)?;
    let mut module = Module {
        data: Vec::new(),
        depends: Vec::new(),
        aliases: Vec::new(),
    };
    for field in section(&data, ".modinfo")?.split(|&b| b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(list) = field.strip_prefix("depends=") {
            let deps = list.split(',').filter(|d| !d.is_empty());
            module.depends.extend(deps.map(|d| d.replace('-', "_")));
        } else if let Some(alias) = field.strip_prefix("alias=") {
            module.aliases.push(alias.to_owned());
        }
    }
    module.data = data;
    Ok(module)
}

fn decompressed(path: &Path) -> anyhow::Result<Vec<u8>> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("ko") => {
            return std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        }
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => bail!("unknown module compression: {}", path.display()),
    };
    cmd::output_bytes(Command::new(tool).arg("-dc").arg(path))
}

/// The bytes of section `wanted` of a 64-bit little-endian ELF file.
fn section<'a>(elf: &'a [u8], wanted: &str) -> anyhow::Result<&'a [u8]> {
    ensure!(
        elf.get(..6) == Some(b"\x7fELF\x02\x01"),
        "not a 64-bit little-endian ELF file"
    );
    let shoff = read_u64(elf, 0x28)?;
    let shentsize = read_u16(elf, 0x3a)?;
    let shnum = read_u16(elf, 0x3c)?;
    let shstrndx = read_u16(elf, 0x3e)?;
    // (offset of the name in the section-name table, contents) of section header `i`
    let header = |i: usize| -> anyhow::Result<(usize, &'a [u8])> {
        let at = shoff + i * shentsize;
        let name = usize::try_from(read_u32(elf, at)?)?;
        let offset = read_u64(elf, at + 0x18)?;
        let size = read_u64(elf, at + 0x20)?;
        let body = elf
            .get(offset..offset + size)
            .context("section outside the file")?;
        Ok((name, body))
    };
    let (_, names) = header(shstrndx)?;
    for i in 0..shnum {
        let (name, body) = header(i)?;
        let name = names.get(name..).context("bad section name")?;
        if name.split(|&b| b == 0).next() == Some(wanted.as_bytes()) {
            return Ok(body);
        }
    }
    bail!("no {wanted} section")
}

fn read_u16(b: &[u8], at: usize) -> anyhow::Result<usize> {
    let bytes = b.get(at..at + 2).context("truncated ELF")?;
    Ok(u16::from_le_bytes(bytes.try_into()?).into())
}

fn read_u32(b: &[u8], at: usize) -> anyhow::Result<u32> {
    let bytes = b.get(at..at + 4).context("truncated ELF")?;
    Ok(u32::from_le_bytes(bytes.try_into()?))
}

fn read_u64(b: &[u8], at: usize) -> anyhow::Result<usize> {
    let bytes = b.get(at..at + 8).context("truncated ELF")?;
    Ok(usize::try_from(u64::from_le_bytes(bytes.try_into()?))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(depends: &[&str], aliases: &[&str]) -> Module {
        Module {
            data: Vec::new(),
            depends: depends.iter().map(|d| d.to_string()).collect(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn set() -> ModuleSet {
        let modules = [
            (
                "nft_ct",
                module(&["nf_conntrack", "nf_tables"], &["nft-expr-ct"]),
            ),
            ("nf_conntrack", module(&["libcrc32c"], &[])),
            ("nf_tables", module(&["nfnetlink", "libcrc32c"], &[])),
            ("nfnetlink", module(&[], &[])),
            ("libcrc32c", module(&[], &[])),
        ];
        ModuleSet {
            modules: modules
                .into_iter()
                .map(|(n, m)| (n.to_owned(), m))
                .collect(),
        }
    }

    #[test]
    fn dependencies_load_first_once() {
        assert_eq!(
            set().load_order(&["nft_ct", "nf_tables"]),
            [
                "libcrc32c",
                "nf_conntrack",
                "nfnetlink",
                "nf_tables",
                "nft_ct"
            ]
        );
    }

    #[test]
    fn modules_dep_lists_transitive_dependencies_last_loaded_first() {
        let dep = set().modules_dep();
        assert!(dep.contains("nft_ct.ko: nf_tables.ko nfnetlink.ko nf_conntrack.ko libcrc32c.ko\n"));
        assert!(dep.contains("nfnetlink.ko:\n"));
        assert_eq!(set().modules_alias(), "alias nft-expr-ct nft_ct\n");
    }

    #[test]
    fn module_names_are_the_kernels() {
        assert_eq!(
            module_name(Path::new("/x/nf_conntrack-foo.ko.xz")).as_deref(),
            Some("nf_conntrack_foo")
        );
        assert_eq!(
            module_name(Path::new("/x/veth.ko")).as_deref(),
            Some("veth")
        );
        assert_eq!(module_name(Path::new("/x/modules.dep")), None);
    }
}
