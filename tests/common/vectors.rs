//! Comparing two indexes of the same tree.

use std::path::Path;

use gguf_embed::index::Index;

/// The F32 model's vectors of one text agree to this cosine whatever its batch-mates are
/// (the same bound as its agreement with the transformers reference); they are not
/// bit-identical, because llama.cpp's kernels sum in an order that depends on the batch.
pub const SAME_VECTOR_COSINE: f32 = 0.99999;

/// Two indexes hold the same chunks (paths and line ranges) with the same vectors.
pub fn assert_same_chunks(a: &Path, b: &Path) {
    let a = Index::open_read_only(a).unwrap().vectors().unwrap();
    let b = Index::open_read_only(b).unwrap().vectors().unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, x.1, x.2), (&y.0, y.1, y.2));
        let cosine = gguf_embed::vector::dot(&x.3, &y.3);
        assert!(
            cosine >= SAME_VECTOR_COSINE,
            "{}:{}-{}: cosine {cosine}",
            x.0,
            x.1,
            x.2
        );
    }
}
