//! Node-API linking (napi-build), and for the `portable` build a run path to the addon's own
//! folder: that build's libllama and libggml are shared libraries, shipped next to the `.node`
//! file in a prebuilt package.

fn main() {
    napi_build::setup();
    let portable = std::env::var_os("CARGO_FEATURE_PORTABLE").is_some();
    if !portable {
        return;
    }
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN"),
        Ok("macos") => println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,@loader_path"),
        // Node loads addons on Windows with LOAD_WITH_ALTERED_SEARCH_PATH: their DLLs are
        // found in their own folder.
        _ => {}
    }
}
