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

/// Drops the resident pages of the given byte ranges of `model` from this process's mappings
/// of it. Returns the bytes released. Best effort: does nothing where unsupported.
#[cfg(target_os = "linux")]
pub(crate) fn release(model: &Path, ranges: &[Range<u64>]) -> u64 {
    let Ok(model) = std::fs::canonicalize(model) else {
        return 0;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let mut released = 0;
    for mapping in maps.lines().filter_map(parse_mapping) {
        if Path::new(mapping.path) != model {
            continue;
        }
        for range in ranges {
            let Some(addresses) = mapping.addresses_of(range) else {
                continue;
            };
            let start = addresses.start.next_multiple_of(page);
            let end = addresses.end / page * page;
            if end <= start {
                continue;
            }
            // SAFETY: the range lies inside a read-only file mapping of the model; dropping its
            // pages only makes later reads fault them back in from the file.
            let rc = unsafe {
                libc::madvise(
                    start as *mut libc::c_void,
                    (end - start) as usize,
                    libc::MADV_DONTNEED,
                )
            };
            if rc == 0 {
                released += end - start;
            }
        }
    }
    released
}

/// Elsewhere the pages stay; memory use is what the OS makes of the mapping.
#[cfg(not(target_os = "linux"))]
pub(crate) fn release(_model: &Path, _ranges: &[Range<u64>]) -> u64 {
    0
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
    #[test]
    fn releases_resident_pages_of_a_mapped_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.bin");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        drop(f);
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the test owns the file and does not change it while mapped.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.unwrap();
        let range = 4096..(1u64 << 19);
        let released = release(&path, std::slice::from_ref(&range));
        assert!(released >= (1 << 19) - 2 * 4096, "released {released}");
        // The data is still readable afterwards.
        assert!(map.iter().all(|&b| b == 7));
    }
}
