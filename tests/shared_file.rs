//! Two embedders of one model file in one process, as a desktop app may hold them: dropping one
//! must never touch memory the other (or the host) owns. The page release of the token
//! embeddings (`engine/pages.rs`) once found its mappings by the file's name, so an embedder
//! loaded after another one kept releasing the other's mapping, even after it was freed and the
//! host had put its own data at that address.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gguf_embed::{Device, EmbedOptions, Embedder, EmbedderOptions};

const TEXTS: [&str; 3] = [
    "The quick brown fox jumps over the lazy dog.",
    "fn main() { println!(\"hello\"); }",
    "Das Wetter ist heute schön.",
];

fn load(path: &Path) -> Embedder {
    Embedder::new(path, EmbedderOptions::default().with_device(Device::Cpu)).unwrap()
}

/// The vectors' bits: any change at all shows.
fn bits(embedder: &Embedder) -> Vec<Vec<u32>> {
    embedder
        .embed(&TEXTS, &EmbedOptions::documents())
        .unwrap()
        .into_iter()
        .map(|e| e.vector.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// The address ranges where this process maps `path`.
fn mappings_of(path: &Path) -> Vec<(usize, usize)> {
    let path = std::fs::canonicalize(path).unwrap();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.ends_with(path.to_str().unwrap()))
        .map(|line| {
            let (start, end) = line.split(' ').next().unwrap().split_once('-').unwrap();
            (
                usize::from_str_radix(start, 16).unwrap(),
                usize::from_str_radix(end, 16).unwrap(),
            )
        })
        .collect()
}

/// Host memory: an anonymous mapping placed exactly at `start`, filled with ones.
struct HostBuffer {
    ptr: *mut u8,
    len: usize,
}

impl HostBuffer {
    fn at(start: usize, len: usize) -> Self {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping: it fails instead.
        let ptr = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(
            ptr as usize, start,
            "could not map host memory at the freed address {start:#x}"
        );
        // SAFETY: the mapping is ours, writable and `len` bytes long.
        unsafe { std::ptr::write_bytes(ptr.cast::<u8>(), 1, len) };
        Self {
            ptr: ptr.cast(),
            len,
        }
    }

    /// Bytes that are no longer one.
    fn damaged(&self) -> usize {
        // SAFETY: the mapping lives as long as self.
        let data = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        data.iter().filter(|&&b| b != 1).count()
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `at` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[test]
fn dropping_one_embedder_of_a_file_leaves_the_other_and_the_host_alone() {
    let path = common::q8_model();
    let before = mappings_of(&path);
    let b = load(&path);
    let b_mappings: Vec<_> = mappings_of(&path)
        .into_iter()
        .filter(|m| !before.contains(m))
        .collect();
    assert!(!b_mappings.is_empty(), "embedder B maps the file");
    let a = load(&path);
    let expected = bits(&a);
    assert_eq!(bits(&b), expected, "two embedders of one file agree");

    // B goes; the host puts its own data where B's weights were mapped.
    drop(b);
    let now = mappings_of(&path);
    assert!(
        b_mappings.iter().all(|m| !now.contains(m)),
        "B's mapping is gone"
    );
    let host: Vec<HostBuffer> = b_mappings
        .iter()
        .map(|&(start, end)| HostBuffer::at(start, end - start))
        .collect();
    for _ in 0..3 {
        assert_eq!(bits(&a), expected, "A's vectors changed");
    }
    let damaged: usize = host.iter().map(HostBuffer::damaged).sum();
    assert_eq!(
        damaged, 0,
        "embedding on A changed {damaged} bytes of host memory"
    );
    drop(host);

    // A sibling loaded and dropped over and over while A embeds: A's vectors never move.
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicUsize::new(0));
    let embedding = {
        let (a, stop, checked) = (a.clone(), Arc::clone(&stop), Arc::clone(&checked));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(
                    bits(&a),
                    expected,
                    "A's vectors changed while B came and went"
                );
                checked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for _ in 0..10 {
        let sibling = load(&path);
        drop(sibling);
    }
    // Bounded by count, not time: at least a few embeds overlapped the loop or follow it.
    while checked.load(Ordering::Relaxed) < 5 && !embedding.is_finished() {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    embedding.join().expect("A's vectors stayed the same");
    assert!(checked.load(Ordering::Relaxed) >= 5);
}
