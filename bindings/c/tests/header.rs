//! The committed header must be what cbindgen generates from the current source: a change
//! to the C API that forgets the header fails here. To regenerate it:
//! `GGUF_EMBED_UPDATE_HEADER=1 cargo test --release -p gguf-embed-c --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_the_source() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not read the C API's source")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = crate_dir.join("include").join("gguf_embed.h");
    if std::env::var_os("GGUF_EMBED_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with GGUF_EMBED_UPDATE_HEADER=1 cargo test --release -p \
         gguf-embed-c --test header, and commit it",
        path.display()
    );
}
