#!/usr/bin/env bash
# Builds the `vulkan` feature and runs the reference tests on Mesa's software Vulkan device
# (lavapipe), no GPU needed. Debian 12's Vulkan headers (1.3.239) are older than the llama.cpp
# we build needs (VK_EXT_layer_settings), so Debian 13's headers are unpacked into
# /opt/vulkan-sdk (the system is not changed) and given to the build through VULKAN_SDK.
# Usage (as root on Debian 12): bench/vulkan-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
apt-get install -y -qq libvulkan-dev glslc mesa-vulkan-drivers >/dev/null
sdk=/opt/vulkan-sdk
if [ ! -f "$sdk/include/vulkan/vulkan.hpp" ]; then
    tmp=$(mktemp -d)
    echo "deb http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
    mkdir -p "$tmp/lists/partial"
    apt_opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$tmp/lists")
    apt-get "${apt_opts[@]}" update -qq
    (cd "$tmp" && apt-get "${apt_opts[@]}" download libvulkan-dev spirv-headers)
    for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
    mkdir -p "$sdk/lib"
    cp -r "$tmp/root/usr/include" "$sdk/include"
    ln -sf /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$sdk/lib/libvulkan.so"
fi
export VULKAN_SDK=$sdk CPLUS_INCLUDE_PATH=$sdk/include C_INCLUDE_PATH=$sdk/include
export CARGO_TARGET_DIR=target/vulkan
cargo build --release --features vulkan
# ggml skips CPU-type Vulkan devices unless named: lavapipe is device 0 here.
export GGML_VK_VISIBLE_DEVICES=${GGML_VK_VISIBLE_DEVICES:-0}
target/vulkan/release/gguf-embed devices
GGUF_EMBED_TEST_DEVICE=gpu cargo test --release --features vulkan --test reference -- --nocapture
