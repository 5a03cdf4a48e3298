//! Q8_0 and F16 models run from a copy of their file with the weights stored in the CPU
//! kernels' layouts (`PrepackedWeights::Auto`): the copy's vectors are bit for bit those of the
//! repack at load, the copy is reused, and a copy this build cannot run falls back to the model
//! itself. The F16 and mixed (Q8_0 + F16 matrices) models are written here from the committed
//! fixtures (tests/common/f16_writer.rs).

mod common;

use std::path::{Path, PathBuf};

use common::f16_writer::{Rounding, write_f16_copy, write_with_f16_matrices};
use common::{cases, f32_model, q8_model};
use gguf_embed::gguf::prepack::{self, Layout};
use gguf_embed::gguf::{GgufFile, TensorInfo, f16x16, q8_0x16};
use gguf_embed::{Bf16Weights, EmbedOptions, Embedder, EmbedderOptions, PrepackedWeights};

/// Whether this CPU runs the interleaved kernels (and so takes prepacked copies), as the library
/// says; the tests that skip without them go through tests/common/cpu.rs, so that in CI a skip
/// for a feature the machine has fails.
fn interleaved_kernels() -> bool {
    let has = common::cpu::has_all(&["avx2", "fma", "f16c"]);
    assert_eq!(has, prepack::cpu_runs_interleaved_kernels());
    has
}

fn embedder(model: &Path, when: PrepackedWeights, copies: &Path) -> Embedder {
    let options = EmbedderOptions::default()
        .with_device(gguf_embed::Device::Cpu)
        .with_threads(2)
        .with_prepacked_weights(when)
        .with_prepack_dir(copies);
    Embedder::new(model, options).unwrap()
}

/// Every case's vector, each text in a decode of its own, as raw bits.
fn vectors(e: &Embedder) -> Vec<Vec<u32>> {
    cases()
        .iter()
        .map(|c| {
            let options = EmbedOptions::default().with_instruction(c.instruction());
            let v = e.embed(&[&c.text], &options).unwrap().remove(0).vector;
            v.iter().map(|x| x.to_bits()).collect()
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The models under test, written into `dir` where they are not committed: the Q8_0 fixture,
/// an F16 one (from the F32 fixture, not bfloat16 values), and a mixed one (the Q8_0 fixture
/// with its attention output and FFN down matrices in F16).
#[derive(Debug, Clone, Copy)]
enum Model {
    Q8_0,
    F16,
    Mixed,
}

impl Model {
    fn path(self, dir: &Path) -> PathBuf {
        match self {
            Model::Q8_0 => q8_model(),
            Model::F16 => {
                let path = dir.join("tiny-f16.gguf");
                write_f16_copy(&f32_model(), &path, Rounding::Direct);
                path
            }
            Model::Mixed => {
                let path = dir.join("tiny-mixed.gguf");
                write_with_f16_matrices(&q8_model(), &path, |name| {
                    name.ends_with("attn_output.weight") || name.ends_with("ffn_down.weight")
                });
                path
            }
        }
    }

    /// The file-name suffix of its copy: named after Q8_0 when it has Q8_0 matrices.
    fn suffix(self) -> &'static str {
        match self {
            Model::Q8_0 | Model::Mixed => ".q8_0x16.gguf",
            Model::F16 => ".f16x16.gguf",
        }
    }

    /// The layouts its copy stores.
    fn layouts(self) -> &'static [Layout] {
        match self {
            Model::Q8_0 => &[Layout::Q8_0x16],
            Model::F16 => &[Layout::F16x16],
            Model::Mixed => &[Layout::Q8_0x16, Layout::F16x16],
        }
    }
}

/// The names a copy lists under `key`, if it has the key.
fn listed(copy: &GgufFile, key: &str) -> Option<Vec<String>> {
    match copy.get(key)? {
        gguf_embed::gguf::Value::Array(a) => Some(
            copy.array_strings(a)
                .unwrap()
                .map(|s| String::from_utf8(s.to_vec()).unwrap())
                .collect(),
        ),
        other => panic!("{key} is {other:?}"),
    }
}

/// The documented permutation of one tensor's bytes, for its layout.
fn permuted(t: &TensorInfo, layout: Layout, bytes: &[u8]) -> Vec<u8> {
    let mut expected = vec![0; bytes.len()];
    let (rows, k) = ((t.n_elements() / t.dims[0]) as usize, t.dims[0] as usize);
    match layout {
        Layout::Q8_0x16 => q8_0x16::repack(bytes, &mut expected, rows, k),
        Layout::F16x16 => f16x16::repack(bytes, &mut expected, rows, k),
    }
    expected
}

fn same_vectors_bit_for_bit(model: Model) {
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let path = model.path(dir.path());
    let repacked_at_load = embedder(&path, PrepackedWeights::Never, &copies);
    assert_eq!(repacked_at_load.weights_file(), path);
    assert!(files_in(&copies).is_empty(), "Never writes nothing");

    let prepacked = embedder(&path, PrepackedWeights::Auto, &copies);
    if !interleaved_kernels() {
        // Without the interleaved kernels there is no layout to store: no copy is made.
        assert_eq!(prepacked.weights_file(), path);
        assert!(files_in(&copies).is_empty());
        return;
    }
    // The copy is used (a refused one would have fallen back to the model).
    let copy = prepacked.weights_file().to_path_buf();
    assert_eq!(files_in(&copies), vec![copy.clone(), seal_of(&copy)]);
    assert!(copy.to_string_lossy().ends_with(model.suffix()), "{copy:?}");

    // The copy names, under each layout's key, exactly the tensors the CPU repacks in that
    // layout, each stored as the documented permutation of the model's bytes.
    let original = GgufFile::open(&path).unwrap();
    let packed = GgufFile::open(&copy).unwrap();
    for layout in Layout::ALL {
        let names: Vec<&str> = original
            .tensors()
            .iter()
            .filter(|t| Layout::of(t) == Some(layout))
            .map(|t| t.name.as_str())
            .collect();
        let stored = model.layouts().contains(&layout);
        assert_eq!(!names.is_empty(), stored, "{model:?} {layout:?}");
        match listed(&packed, layout.key()) {
            Some(list) => assert_eq!(list, names, "{}", layout.key()),
            None => assert!(!stored, "the copy lacks {}", layout.key()),
        }
    }
    let bytes = |f: &GgufFile, name: &str| {
        let range = f.tensor_file_range(name).unwrap();
        std::fs::read(f.path()).unwrap()[range.start as usize..range.end as usize].to_vec()
    };
    for t in original.tensors() {
        let (a, b) = (bytes(&original, &t.name), bytes(&packed, &t.name));
        if let Some(layout) = Layout::of(t) {
            assert!(
                b == permuted(t, layout, &a),
                "{} is not the permutation",
                t.name
            );
            assert!(a != b, "{} was not repacked", t.name);
        } else {
            assert!(a == b, "{} changed", t.name);
        }
    }

    assert_eq!(
        vectors(&prepacked),
        vectors(&repacked_at_load),
        "the prepacked copy's vectors differ from the repack at load"
    );
}

#[test]
fn the_prepacked_copy_gives_the_same_vectors_bit_for_bit() {
    same_vectors_bit_for_bit(Model::Q8_0);
}

#[test]
fn the_prepacked_copy_of_an_f16_model_gives_the_same_vectors_bit_for_bit() {
    same_vectors_bit_for_bit(Model::F16);
}

/// A Q8_0 model with some F16 matrices: both layouts in one copy (a copy with the Q8_0 ones
/// only would be refused, since the CPU backend places the F16 ones in its repack buffer too).
#[test]
fn the_prepacked_copy_of_a_mixed_q8_0_and_f16_model_gives_the_same_vectors_bit_for_bit() {
    same_vectors_bit_for_bit(Model::Mixed);
}

fn reused_and_rewritten(model: Model) {
    if !interleaved_kernels() {
        return eprintln!("this CPU has no interleaved kernels: no copies to reuse");
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let path = model.path(dir.path());
    let first = embedder(&path, PrepackedWeights::Auto, &copies)
        .weights_file()
        .to_path_buf();
    assert!(
        first.to_string_lossy().ends_with(model.suffix()),
        "{first:?}"
    );
    let written = std::fs::metadata(&first).unwrap().modified().unwrap();
    let again = embedder(&path, PrepackedWeights::Auto, &copies);
    assert_eq!(again.weights_file(), first);
    assert_eq!(
        std::fs::metadata(&first).unwrap().modified().unwrap(),
        written,
        "the copy was written again"
    );
    let expected = vectors(&again);
    drop(again);

    // A copy cut short (a full disk, say, under another tool) is never used: it is rewritten.
    let len = std::fs::metadata(&first).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let rewritten = embedder(&path, PrepackedWeights::Auto, &copies);
    assert_eq!(rewritten.weights_file(), first);
    assert_eq!(std::fs::metadata(&first).unwrap().len(), len);
    assert_eq!(vectors(&rewritten), expected);
    assert_eq!(
        files_in(&copies),
        vec![first.clone(), seal_of(&first)],
        "nothing else is left"
    );
}

/// The checksum file written beside a copy.
fn seal_of(copy: &Path) -> PathBuf {
    PathBuf::from(format!("{}.json", copy.display()))
}

/// The Q8_0 fixture with every block scale of one matrix negated: a valid model of exactly the
/// same size whose vectors differ.
fn another_model_of_the_same_size(dest: &Path) {
    let file = GgufFile::open(q8_model()).unwrap();
    let t = file
        .tensors()
        .iter()
        .find(|t| t.name == "blk.0.ffn_down.weight")
        .unwrap();
    let mut bytes = std::fs::read(q8_model()).unwrap();
    let start = (file.data_offset() + t.offset) as usize;
    // A Q8_0 block is an f16 scale and 32 int8 values: flip each scale's sign bit.
    for block in bytes[start..start + t.size as usize].chunks_exact_mut(34) {
        block[1] ^= 0x80;
    }
    std::fs::write(dest, bytes).unwrap();
}

/// `cp -p`, `rsync -t` and build systems replace a file by another of the same size with the
/// same modification time. The copy of the file it replaced must not be served for it.
#[test]
fn a_model_replaced_by_another_of_the_same_size_and_time_gets_its_own_copy() {
    if !prepack::cpu_runs_interleaved_kernels() {
        return eprintln!("this CPU has no interleaved kernels: no copies");
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let path = dir.path().join("model.gguf");
    let other = dir.path().join("other.gguf");
    std::fs::copy(q8_model(), &path).unwrap();
    another_model_of_the_same_size(&other);
    let expected_other = vectors(&embedder(&other, PrepackedWeights::Never, &copies));

    let first = embedder(&path, PrepackedWeights::Auto, &copies);
    let first_copy = first.weights_file().to_path_buf();
    assert_ne!(first_copy, path, "the copy was not used");
    let original = vectors(&first);
    drop(first);
    assert_ne!(original, expected_other, "the two models must differ");

    // Replace the model in place as `cp -p` does: same inode, same size, same mtime.
    let before = std::fs::metadata(&path).unwrap();
    std::fs::copy(&other, &path).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap()),
        "the replacement keeps size and modification time"
    );

    let replaced = embedder(&path, PrepackedWeights::Auto, &copies);
    assert_ne!(
        replaced.weights_file(),
        first_copy,
        "the old copy was served"
    );
    assert_eq!(vectors(&replaced), expected_other);
    assert!(!first_copy.exists(), "the stale copy is left behind");
    assert!(
        !seal_of(&first_copy).exists(),
        "its checksum is left behind"
    );
}

/// A copy from a release with other layouts is never used: one whose header says another layout
/// version is written again, and one named after another version is removed.
#[test]
fn a_copy_of_another_layout_version_is_rewritten_and_old_ones_are_removed() {
    if !prepack::cpu_runs_interleaved_kernels() {
        return eprintln!("this CPU has no interleaved kernels: no copies");
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let path = dir.path().join("model.gguf");
    std::fs::copy(q8_model(), &path).unwrap();
    let copy = embedder(&path, PrepackedWeights::Auto, &copies)
        .weights_file()
        .to_path_buf();
    let name = copy.file_name().unwrap().to_string_lossy().into_owned();
    let version = format!(".v{}.", prepack::LAYOUT_VERSION);
    assert!(name.contains(&version), "{name}");
    let file = GgufFile::open(&copy).unwrap();
    assert_eq!(
        prepack::layout_version(&file),
        Some(u64::from(prepack::LAYOUT_VERSION))
    );
    drop(file);

    // An old release's copy of another model, and this copy's header set to another version.
    let old = copies.join(name.replace(&version, ".v1.").replace("model.", "older."));
    std::fs::copy(&copy, &old).unwrap();
    let mut bytes = std::fs::read(&copy).unwrap();
    let key = prepack::VERSION_KEY.as_bytes();
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
    bytes[at..at + 4].copy_from_slice(&(prepack::LAYOUT_VERSION + 1).to_le_bytes());
    std::fs::write(&copy, &bytes).unwrap();

    let e = embedder(&path, PrepackedWeights::Auto, &copies);
    assert_eq!(e.weights_file(), copy);
    let rewritten = GgufFile::open(&copy).unwrap();
    assert_eq!(
        prepack::layout_version(&rewritten),
        Some(u64::from(prepack::LAYOUT_VERSION)),
        "the copy of another version was used, not written again"
    );
    assert!(!old.exists(), "the old release's copy is left behind");
    assert_eq!(files_in(&copies), vec![copy.clone(), seal_of(&copy)]);
}

#[test]
fn the_copy_is_reused_and_a_partial_one_is_rewritten() {
    reused_and_rewritten(Model::Q8_0);
}

#[test]
fn the_f16_copy_is_reused_and_a_partial_one_is_rewritten() {
    reused_and_rewritten(Model::F16);
}

/// Writes the copy of `path` afresh in `copies`, then renames the first mention of `from` in
/// it (the list in its metadata: the tensor table comes after) to `to`. The header keeps its
/// place in the file: the padding before the data section takes up the change of length.
fn tampered_copy(path: &Path, copies: &Path, from: &str, to: &str) -> PathBuf {
    for old in files_in(copies) {
        std::fs::remove_file(old).unwrap();
    }
    let copy = embedder(path, PrepackedWeights::Auto, copies)
        .weights_file()
        .to_path_buf();
    assert_ne!(copy, path, "the copy was not used");
    let file = GgufFile::open(&copy).unwrap();
    let bytes = std::fs::read(&copy).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("the copy names {from}"));
    assert!(
        at < file.tensor_table_offset() as usize,
        "the first mention is the list in the metadata"
    );
    assert_eq!(bytes[at - 8..at], (from.len() as u64).to_le_bytes());
    let mut out = bytes[..at - 8].to_vec();
    out.extend_from_slice(&(to.len() as u64).to_le_bytes());
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&bytes[at + from.len()..file.tensor_table_end() as usize]);
    let data = file.data_offset() as usize;
    assert_eq!(
        (out.len() as u64).next_multiple_of(file.alignment()),
        data as u64,
        "the data section would move"
    );
    out.resize(data, 0);
    out.extend_from_slice(&bytes[data..]);
    std::fs::write(&copy, &out).unwrap();
    copy
}

/// Each tampered list must be refused by llama.cpp's loader rather than computed with: the
/// embedder then loads the model itself, with the same vectors as a repack at load.
fn tampered_lists_fall_back(model: Model, tampers: &[(&str, &str)]) {
    if !interleaved_kernels() {
        return eprintln!("this CPU has no interleaved kernels: no copies to refuse");
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let path = model.path(dir.path());
    let expected = vectors(&embedder(&path, PrepackedWeights::Never, &copies));
    for &(from, to) in tampers {
        tampered_copy(&path, &copies, from, to);
        let e = embedder(&path, PrepackedWeights::Auto, &copies);
        assert_eq!(e.weights_file(), path, "the copy naming {to} was used");
        assert_eq!(vectors(&e), expected, "{from} -> {to}");
    }
}

#[test]
fn a_copy_whose_layout_this_build_does_not_run_falls_back_to_the_model() {
    // Renamed, in the copy's list only, to a norm weight of the same length: the list then
    // claims an F32 vector is packed and leaves a packed matrix out.
    tampered_lists_fall_back(
        Model::Q8_0,
        &[("blk.0.ffn_gate.weight", "blk.0.ffn_norm.weight")],
    );
}

#[test]
fn a_tampered_f16_copy_falls_back_to_the_model() {
    tampered_lists_fall_back(
        Model::F16,
        &[
            // An F32 vector claimed as packed F16, a packed matrix left out.
            ("blk.0.ffn_gate.weight", "blk.0.ffn_norm.weight"),
            // Another layer's matrix listed twice, this one left out (plain F16 to the loader,
            // which would read a permuted matrix as a plain one).
            ("blk.0.ffn_gate.weight", "blk.1.ffn_gate.weight"),
            // An F16 matrix the CPU backend does not repack (the vocabulary) claimed as packed,
            // a packed one left out: the names in the repack buffer are not the listed ones.
            ("blk.0.ffn_gate.weight", "token_embd.weight"),
        ],
    );
}

#[test]
fn a_mixed_copy_whose_lists_mix_up_types_falls_back_to_the_model() {
    // The Q8_0 list (written first) names an F16 matrix, which the F16 list names too.
    tampered_lists_fall_back(
        Model::Mixed,
        &[("blk.0.ffn_gate.weight", "blk.0.ffn_down.weight")],
    );
}

/// The BF16 copy and the CPU-layout copy are alternatives for an F16 model: BF16 kernels when
/// asked for and the weights are bfloat16 values, else the F16 layout.
#[test]
fn an_f16_model_takes_the_bf16_copy_when_asked_and_the_cpu_layout_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let both = |model: &Path, bf16: Bf16Weights| {
        let options = EmbedderOptions::default()
            .with_device(gguf_embed::Device::Cpu)
            .with_threads(2)
            .with_bf16_weights(bf16)
            .with_bf16_dir(&copies)
            .with_prepacked_weights(PrepackedWeights::Auto)
            .with_prepack_dir(&copies);
        Embedder::new(model, options)
            .unwrap()
            .weights_file()
            .to_string_lossy()
            .into_owned()
    };
    let bfloat16 = dir.path().join("bfloat16-f16.gguf");
    write_f16_copy(&f32_model(), &bfloat16, Rounding::ViaBfloat16);
    let plain = dir.path().join("plain-f16.gguf");
    write_f16_copy(&f32_model(), &plain, Rounding::Direct);
    let layout = interleaved_kernels();

    assert!(both(&bfloat16, Bf16Weights::Always).ends_with(".bf16.gguf"));
    // Weights BF16 cannot hold: no BF16 copy, so the F16 layout's.
    let fallback = both(&plain, Bf16Weights::Always);
    assert_eq!(fallback.ends_with(".f16x16.gguf"), layout, "{fallback}");
    let never = both(&bfloat16, Bf16Weights::Never);
    assert_eq!(never.ends_with(".f16x16.gguf"), layout, "{never}");

    // A copy given as the model runs as it is: no copy of a copy.
    if layout {
        let before = files_in(&copies);
        for bf16 in [Bf16Weights::Always, Bf16Weights::Never] {
            assert_eq!(both(Path::new(&never), bf16), never);
        }
        assert_eq!(files_in(&copies), before);
    }
}
