//! Q8_0 models run from a copy of their file with the weights stored in the CPU kernels'
//! layout (`PrepackedWeights::Auto`): the copy's vectors are bit for bit those of the repack at
//! load, the copy is reused, and a copy this build cannot run falls back to the model itself.

mod common;

use std::path::{Path, PathBuf};

use common::{cases, q8_model};
use gguf_embed::gguf::{GgufFile, q8_0x16};
use gguf_embed::{EmbedOptions, Embedder, EmbedderOptions, PrepackedWeights};

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

#[test]
fn the_prepacked_copy_gives_the_same_vectors_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let model = q8_model();
    let repacked_at_load = embedder(&model, PrepackedWeights::Never, &copies);
    assert_eq!(repacked_at_load.weights_file(), model);
    assert!(files_in(&copies).is_empty(), "Never writes nothing");

    let prepacked = embedder(&model, PrepackedWeights::Auto, &copies);
    if !q8_0x16::cpu_runs_q8_0x16() {
        // Without the interleaved kernels there is no layout to store: no copy is made.
        assert_eq!(prepacked.weights_file(), model);
        assert!(files_in(&copies).is_empty());
        return;
    }
    let copy = prepacked.weights_file().to_path_buf();
    assert_eq!(files_in(&copies), vec![copy.clone()]);
    assert!(copy.to_string_lossy().ends_with(".q8_0x16.gguf"));

    // The copy names exactly the tensors the CPU repacks, each stored as the documented
    // permutation of the model's bytes.
    let original = GgufFile::open(&model).unwrap();
    let packed = GgufFile::open(&copy).unwrap();
    let names: Vec<&str> = original
        .tensors()
        .iter()
        .filter(|t| q8_0x16::is_repacked(t))
        .map(|t| t.name.as_str())
        .collect();
    assert!(!names.is_empty());
    let listed = packed
        .get(q8_0x16::KEY)
        .expect("the copy lists its packed tensors");
    let listed: Vec<String> = match listed {
        gguf_embed::gguf::Value::Array(a) => packed
            .array_strings(a)
            .unwrap()
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(listed, names);
    let bytes = |f: &GgufFile, name: &str| {
        let range = f.tensor_file_range(name).unwrap();
        std::fs::read(f.path()).unwrap()[range.start as usize..range.end as usize].to_vec()
    };
    for t in original.tensors() {
        let (a, b) = (bytes(&original, &t.name), bytes(&packed, &t.name));
        if q8_0x16::is_repacked(t) {
            let mut expected = vec![0; a.len()];
            let rows = (t.n_elements() / t.dims[0]) as usize;
            q8_0x16::repack(&a, &mut expected, rows, t.dims[0] as usize);
            assert!(b == expected, "{} is not the permutation", t.name);
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
fn the_copy_is_reused_and_a_partial_one_is_rewritten() {
    if !q8_0x16::cpu_runs_q8_0x16() {
        return eprintln!("this CPU has no interleaved Q8_0 kernels: no copies to reuse");
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let model = q8_model();
    let first = embedder(&model, PrepackedWeights::Auto, &copies)
        .weights_file()
        .to_path_buf();
    let written = std::fs::metadata(&first).unwrap().modified().unwrap();
    let again = embedder(&model, PrepackedWeights::Auto, &copies);
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
    let rewritten = embedder(&model, PrepackedWeights::Auto, &copies);
    assert_eq!(rewritten.weights_file(), first);
    assert_eq!(std::fs::metadata(&first).unwrap().len(), len);
    assert_eq!(vectors(&rewritten), expected);
    assert_eq!(files_in(&copies), vec![first], "nothing else is left");
}

#[test]
fn a_copy_whose_layout_this_build_does_not_run_falls_back_to_the_model() {
    if !q8_0x16::cpu_runs_q8_0x16() {
        return eprintln!("this CPU has no interleaved Q8_0 kernels: no copies to refuse");
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let model = q8_model();
    let expected = vectors(&embedder(&model, PrepackedWeights::Never, &copies));
    let copy = embedder(&model, PrepackedWeights::Auto, &copies)
        .weights_file()
        .to_path_buf();

    // Rename one listed tensor, in the copy's list only, to a norm weight of the same length:
    // the list then claims an F32 vector is packed and leaves a packed matrix out, which
    // llama.cpp's loader must refuse rather than compute with.
    let mut bytes = std::fs::read(&copy).unwrap();
    let (from, to) = (b"blk.0.ffn_gate.weight", b"blk.0.ffn_norm.weight");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the list names blk.0.ffn_gate.weight");
    let table = GgufFile::open(&copy).unwrap().tensor_table_offset() as usize;
    assert!(at < table, "the first mention is the list in the metadata");
    bytes[at..at + to.len()].copy_from_slice(to);
    std::fs::write(&copy, &bytes).unwrap();

    let e = embedder(&model, PrepackedWeights::Auto, &copies);
    assert_eq!(e.weights_file(), model, "the refused copy is not used");
    assert_eq!(vectors(&e), expected);
}
