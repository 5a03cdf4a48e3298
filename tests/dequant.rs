//! Our dequantisation of single rows (the reranker's "yes" and "no" rows) against llama.cpp's
//! Python implementation (`gguf.quants.dequantize`): tests/fixtures/dequant.gguf holds random
//! blocks of every type we read and gguf-py's values for them
//! (models/make_reranker_fixtures.py).

use std::path::Path;

use gguf_embed::gguf::GgufFile;
use gguf_embed::gguf::dequant::DEQUANTIZABLE;

#[test]
fn every_type_matches_gguf_py() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dequant.gguf");
    let file = GgufFile::open(&path).unwrap();
    let mut checked = Vec::new();
    for t in file
        .tensors()
        .iter()
        .filter(|t| !t.name.ends_with(".expected"))
    {
        let expected = file
            .dequantize_rows(&format!("{}.expected", t.name), &[0, 1])
            .unwrap();
        let rows = file.dequantize_rows(&t.name, &[0, 1]).unwrap();
        for (row, want) in rows.iter().zip(&expected) {
            assert_eq!(row.len(), want.len(), "{}", t.name);
            for (i, (&got, &want)) in row.iter().zip(want).enumerate() {
                // Both compute in f32; numpy may round a product-then-difference once less
                // or more than we do (one unit in the last place of the largest term).
                let scale = want.abs().max(1e-3);
                assert!(
                    (got - want).abs() <= scale * 2.0 * f32::EPSILON,
                    "{} value {i}: {got} vs gguf-py {want}",
                    t.name
                );
            }
        }
        checked.push(t.tensor_type.name);
    }
    // The fixture covers every type we claim to read (f32 through the expected tensors).
    for name in DEQUANTIZABLE.iter().filter(|&&n| n != "f32") {
        assert!(checked.contains(name), "the fixture has no {name} tensor");
    }
}

#[test]
fn rows_outside_a_tensor_or_of_unread_types_are_refused() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dequant.gguf");
    let file = GgufFile::open(&path).unwrap();
    let err = file.dequantize_rows("q8_0", &[2]).unwrap_err().to_string();
    assert!(err.contains("no row 2"), "{err}");
    let err = file
        .dequantize_rows("absent", &[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent"), "{err}");
}
