//! Keeping memory low: dropping resident pages of weights the fast path reads only sparsely.
//!
//! llama.cpp maps the model file with MAP_POPULATE, so every page of it counts towards the
//! process's resident memory from the start. The token embedding matrix (151669 rows: a
//! quarter of the 0.6B model) is only read row by row, for the tokens actually embedded, and
//! the LM head that would read all of it is never computed on our path. Telling the kernel we
//! do not need those pages (MADV_DONTNEED on the read-only file mapping) drops them from our
//! resident set; the rows we do read fault back in from the page cache.

use std::ops::Range;
use std::path::Path;

/// The page-aligned address ranges where sparsely read weights are mapped, found once after
/// loading. Releasing them is a cheap system call, repeated after every decode: each row read
/// faults in its neighbourhood too (the kernel maps up to 64 KiB around a fault from the page
/// cache), so without it the matrix creeps back into memory a few pages per token.
///
/// Only the mapping that holds *this* model's weights is ever touched: it is found from the
/// address of one of the model's own tensors (the `anchor`, read from llama.cpp's graph), not
/// by the file's name. Another model of the same file, loaded or already freed by the same
/// process, has its own mapping, which this never sees; and an address that is not a mapping of
/// the model file at the tensor's own file offset (a copy in anonymous memory, a GPU buffer)
/// yields no range at all, since dropping the pages of anonymous memory would zero it.
#[derive(Debug, Default)]
pub(crate) struct SparsePages {
    ranges: Vec<Range<usize>>,
}

/// Where one of the model's own tensors lies, in memory and in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Anchor {
    /// The tensor's data address in this process.
    pub address: usize,
    /// The tensor's byte offset in the model file.
    pub file_offset: u64,
}

impl SparsePages {
    /// Finds where the byte `ranges` of the file `model` are mapped by the one mapping that
    /// holds `anchor`, if that mapping is the model file mapped at the anchor's file offset.
    ///
    /// The caller keeps the model (and so the mapping) alive for as long as it keeps the
    /// result.
    #[cfg(target_os = "linux")]
    pub fn find(model: &Path, anchor: Anchor, ranges: &[Range<u64>]) -> Self {
        let (Ok(model), Ok(maps)) = (
            std::fs::canonicalize(model),
            std::fs::read_to_string("/proc/self/maps"),
        ) else {
            return Self::default();
        };
        let address = anchor.address as u64;
        let Some(mapping) = maps
            .lines()
            .filter_map(parse_mapping)
            .find(|m| (m.start..m.end).contains(&address))
        else {
            return Self::default();
        };
        let maps_the_anchor = Path::new(mapping.path) == model
            && mapping.file_offset + (address - mapping.start) == anchor.file_offset;
        if !maps_the_anchor {
            tracing::debug!(
                "the token embeddings are not read from the model's file mapping; their pages \
                 stay resident"
            );
            return Self::default();
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let ranges = ranges
            .iter()
            .filter_map(|r| mapping.addresses_of(r))
            .map(|a| a.start.next_multiple_of(page) as usize..(a.end / page * page) as usize)
            .filter(|a| a.start < a.end)
            .collect();
        Self { ranges }
    }

    /// Elsewhere the pages stay; memory use is what the OS makes of the mapping.
    #[cfg(not(target_os = "linux"))]
    pub fn find(_model: &Path, _anchor: Anchor, _ranges: &[Range<u64>]) -> Self {
        Self::default()
    }

    /// The address ranges found.
    #[cfg(test)]
    fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Drops the ranges' resident pages; returns the bytes covered.
    ///
    /// The caller keeps the mapping alive: the model owns both.
    pub fn release(&self) -> u64 {
        let mut released = 0;
        #[cfg(target_os = "linux")]
        for range in &self.ranges {
            // SAFETY: `find` checked that the range lies inside the read-only file mapping that
            // holds this model's own tensors, and the model (owner of both this value and the
            // mapping) is alive; dropping its pages only makes later reads fault them back in
            // from the file.
            let rc = unsafe {
                libc::madvise(
                    range.start as *mut libc::c_void,
                    range.len(),
                    libc::MADV_DONTNEED,
                )
            };
            if rc == 0 {
                released += range.len() as u64;
            }
        }
        released
    }
}

/// One line of /proc/self/maps.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Mapping<'a> {
    start: u64,
    end: u64,
    file_offset: u64,
    path: &'a str,
}

impl Mapping<'_> {
    /// The addresses where the file bytes `range` are mapped, if this mapping covers any.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn addresses_of(&self, range: &Range<u64>) -> Option<Range<u64>> {
        let mapped = self.file_offset..self.file_offset + (self.end - self.start);
        let from = range.start.max(mapped.start);
        let to = range.end.min(mapped.end);
        (from < to).then(|| self.start + (from - mapped.start)..self.start + (to - mapped.start))
    }
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_mapping(line: &str) -> Option<Mapping<'_>> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let _perms = fields.next()?;
    let offset = fields.next()?;
    let _device = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        file_offset: u64::from_str_radix(offset, 16).ok()?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines_and_translates_offsets() {
        let line = "7f0000000000-7f0000010000 r--s 00002000 08:01 1234   /models/m.gguf";
        let m = parse_mapping(line).unwrap();
        assert_eq!(m.path, "/models/m.gguf");
        assert_eq!(m.file_offset, 0x2000);
        // File bytes 0x3000..0x5000 are at 0x7f0000001000..0x7f0000003000.
        assert_eq!(
            m.addresses_of(&(0x3000..0x5000)),
            Some(0x7f00_0000_1000..0x7f00_0000_3000)
        );
        assert_eq!(m.addresses_of(&(0..0x1000)), None);
        assert!(parse_mapping("7f0000000000-7f0000010000 rw-p 00000000 00:00 0").is_some());
    }

    #[cfg(target_os = "linux")]
    fn mapped_file(dir: &Path) -> (std::path::PathBuf, memmap2::Mmap) {
        use std::io::Write;
        let path = dir.join("weights.bin");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        drop(f);
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the test owns the file and does not change it while mapped.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.unwrap();
        (path, map)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn releases_resident_pages_of_a_mapped_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, map) = mapped_file(dir.path());
        let range = 4096..(1u64 << 19);
        let anchor = Anchor {
            address: map.as_ptr() as usize + 8192,
            file_offset: 8192,
        };
        let pages = SparsePages::find(&path, anchor, std::slice::from_ref(&range));
        let released = pages.release();
        assert!(released >= (1 << 19) - 2 * 4096, "released {released}");
        // The data is still readable afterwards, and can be released again.
        assert!(map.iter().all(|&b| b == 7));
        assert_eq!(pages.release(), released);
    }

    /// Two mappings of one file: only the one holding the anchor is ever released.
    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_anchored_mapping_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mine) = mapped_file(dir.path());
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: as above.
        let other = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.unwrap();
        let range = 0..(1u64 << 20);
        let anchor = Anchor {
            address: mine.as_ptr() as usize,
            file_offset: 0,
        };
        let pages = SparsePages::find(&path, anchor, std::slice::from_ref(&range));
        let mine_addrs = mine.as_ptr() as usize..mine.as_ptr() as usize + mine.len();
        let other_addrs = other.as_ptr() as usize..other.as_ptr() as usize + other.len();
        assert!(!pages.ranges().is_empty());
        for r in pages.ranges() {
            assert!(
                mine_addrs.contains(&r.start) && r.end <= mine_addrs.end,
                "{r:x?}"
            );
            assert!(
                r.end <= other_addrs.start || r.start >= other_addrs.end,
                "{r:x?}"
            );
        }
    }

    /// An anchor whose address is not the file mapped at its offset (anonymous memory, or the
    /// file at another offset) yields nothing: releasing anonymous pages would zero them.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_anchor_outside_the_file_mapping_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, map) = mapped_file(dir.path());
        let heap = vec![1u8; 1 << 20];
        let range = 0..(1u64 << 20);
        let on_heap = Anchor {
            address: heap.as_ptr() as usize,
            file_offset: 0,
        };
        let wrong_offset = Anchor {
            address: map.as_ptr() as usize,
            file_offset: 4096,
        };
        for anchor in [on_heap, wrong_offset] {
            let pages = SparsePages::find(&path, anchor, std::slice::from_ref(&range));
            assert_eq!(pages.release(), 0, "{anchor:?}");
        }
        assert!(heap.iter().all(|&b| b == 1));
    }
}
