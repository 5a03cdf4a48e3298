#!/usr/bin/env bash
# Rebuilds vendor/llama-cpp-sys-2 from the upstream crate (crates.io) and the patches in
# vendor/patches/NN-*.patch, applied in the order of their numbers, and compares the result
# with the vendored tree: same files, same contents, same modes. What each patch does and why:
# vendor/PATCHES.md.
#
#   vendor/rebuild.sh                   check: exit 1 on any difference (CI runs this)
#   vendor/rebuild.sh --write           replace vendor/llama-cpp-sys-2 with the rebuilt tree
#   vendor/rebuild.sh --make-patch NN-name
#                                       write what vendor/llama-cpp-sys-2 has beyond the
#                                       existing patches as vendor/patches/NN-name.patch
#   vendor/rebuild.sh --upstream VERSION [--keep DIR]
#                                       try the patches on another upstream version: for each,
#                                       whether it applies as it is, applies by a three-way
#                                       merge, or conflicts (and in which files); --keep leaves
#                                       the git repository of the attempt in DIR (one commit per
#                                       patch that applied) to resolve conflicts in
#
# The crate comes through cargo (a throwaway manifest and `cargo fetch`, so cargo checks it
# against the registry index); the base version's checksum is also pinned here. Offline, a
# crate already in cargo's cache is used. The comparison covers the files git would track
# under vendor/llama-cpp-sys-2 in the working tree (committed or not; ignored files aside).
set -euo pipefail

# The upstream crate vendor/llama-cpp-sys-2 is built from (bump both on an upgrade, with the
# exact versions in Cargo.toml).
BASE_VERSION=0.1.160
BASE_SHA256=912d8a0522acec022ae07d099366234067c8af6a18570a603f0749b7bb927e9a
CRATE=llama-cpp-sys-2

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENDORED=vendor/$CRATE
PATCHES="$ROOT/vendor/patches"

mode=check
upstream=""
keep=""
new_patch=""
while [ $# -gt 0 ]; do
    case "$1" in
        --write) mode=write ;;
        --make-patch) mode=make-patch; new_patch="${2:?--make-patch needs a name like 10-my-change}"; shift ;;
        --upstream) mode=upstream; upstream="${2:?--upstream needs a version}"; shift ;;
        --keep) keep="${2:?--keep needs a directory}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "rebuild.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/gguf-embed-vendor.XXXXXX")"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

# git, isolated from the user's configuration (signing, hooks, line endings).
g() {
    git -C "$work" -c user.name=rebuild -c user.email=rebuild@localhost -c commit.gpgsign=false \
        -c core.autocrlf=false -c core.hooksPath=/dev/null "$@"
}

# The .crate file of a version, through cargo: prints its path.
fetch_crate() {
    local version="$1" dir="$tmp/fetch-$1"
    mkdir -p "$dir/src"
    : >"$dir/src/lib.rs"
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "fetch-upstream-$CRATE"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$CRATE = { version = "=$version", default-features = false }

[workspace]
EOF
    if ! (cd "$dir" && cargo fetch -q 2>"$dir/err"); then
        (cd "$dir" && cargo fetch -q --offline 2>>"$dir/err") || {
            cat "$dir/err" >&2
            echo "rebuild.sh: cannot get $CRATE $version from the registry (network?) or cargo's cache" >&2
            exit 1
        }
    fi
    local home="${CARGO_HOME:-$HOME/.cargo}" f
    for f in "$home"/registry/cache/*/"$CRATE-$version.crate"; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    echo "rebuild.sh: cargo fetched $CRATE $version but its .crate is not under $home/registry/cache" >&2
    exit 1
}

# Unpacks a version's crate as the work tree's vendor/llama-cpp-sys-2 (replacing what is there).
unpack() {
    local version="$1" crate
    crate="$(fetch_crate "$version")"
    if [ "$version" = "$BASE_VERSION" ]; then
        local sum
        sum="$(sha256sum "$crate" | cut -d' ' -f1)"
        [ "$sum" = "$BASE_SHA256" ] || {
            echo "rebuild.sh: $crate has sha256 $sum, not the pinned $BASE_SHA256" >&2
            exit 1
        }
    fi
    rm -rf "${work:?}/$VENDORED" "$tmp/unpack"
    mkdir -p "$tmp/unpack" "$work/vendor"
    tar -xzf "$crate" -C "$tmp/unpack"
    mv "$tmp/unpack/$CRATE-$version" "$work/$VENDORED"
}

patch_files() {
    local p
    for p in "$PATCHES"/[0-9][0-9]-*.patch; do
        [ -f "$p" ] && echo "$p"
    done
}

# A repository whose work tree has the project's layout (vendor/llama-cpp-sys-2) and the same
# ignore rules as the project's root, so that both trees leave out the same files.
work="$tmp/work"
mkdir -p "$work"
g init -q
cp "$ROOT/.gitignore" "$work/.gitignore" 2>/dev/null || true

# The base version and the patches, one commit each.
unpack "$BASE_VERSION"
g add -A
g commit -q -m "upstream $CRATE $BASE_VERSION"
while read -r p; do
    name="$(basename "$p" .patch)"
    if ! g apply --index --whitespace=nowarn "$p" 2>"$tmp/apply.err"; then
        cat "$tmp/apply.err" >&2
        echo "rebuild.sh: $name does not apply on $CRATE $BASE_VERSION with the patches before it" >&2
        exit 1
    fi
    g commit -q -m "$name"
done < <(patch_files)
rebuilt="$(g rev-parse "HEAD:$VENDORED")"

# The vendored tree as it is in the project's working tree, hashed into the same repository.
vendored_tree() {
    GIT_INDEX_FILE="$tmp/vendored.index" git --git-dir="$work/.git" --work-tree="$ROOT" \
        -c core.autocrlf=false add -A -- "$VENDORED"
    local tree
    tree="$(GIT_INDEX_FILE="$tmp/vendored.index" git --git-dir="$work/.git" write-tree)"
    git --git-dir="$work/.git" rev-parse "$tree:$VENDORED"
}

case "$mode" in
check)
    vendored="$(vendored_tree)"
    if [ "$rebuilt" != "$vendored" ]; then
        echo "rebuild.sh: $VENDORED differs from $CRATE $BASE_VERSION + vendor/patches (rebuilt -> vendored):" >&2
        g diff --stat=120 --stat-count=40 "$rebuilt" "$vendored" >&2
        g diff --src-prefix="a/$VENDORED/" --dst-prefix="b/$VENDORED/" "$rebuilt" "$vendored" >"$tmp/difference"
        head -200 "$tmp/difference" >&2
        echo "rebuild.sh: a change to the vendored sources belongs in a patch: see vendor/PATCHES.md" >&2
        exit 1
    fi
    echo "rebuild.sh: $VENDORED is $CRATE $BASE_VERSION + $(patch_files | wc -l) patches, file for file"
    ;;
write)
    rm -rf "${ROOT:?}/$VENDORED"
    cp -a "$work/$VENDORED" "$ROOT/$VENDORED"
    echo "rebuild.sh: wrote $VENDORED ($CRATE $BASE_VERSION + $(patch_files | wc -l) patches)"
    ;;
make-patch)
    case "$new_patch" in
        [0-9][0-9]-*) ;;
        *) echo "rebuild.sh: a patch name is NN-name (two digits, then a name)" >&2; exit 2 ;;
    esac
    out="$PATCHES/$new_patch.patch"
    [ -e "$out" ] && { echo "rebuild.sh: $out exists" >&2; exit 1; }
    vendored="$(vendored_tree)"
    [ "$rebuilt" != "$vendored" ] || { echo "rebuild.sh: $VENDORED has nothing beyond the patches" >&2; exit 1; }
    {
        echo "gguf-embed patch ${new_patch%%-*} of $CRATE: what and why in vendor/PATCHES.md."
        echo
        # Paths relative to the project's root (a/vendor/llama-cpp-sys-2/...), as in the others.
        g diff --no-renames --src-prefix="a/$VENDORED/" --dst-prefix="b/$VENDORED/" "$rebuilt" "$vendored"
    } >"$out.partial"
    mv "$out.partial" "$out"
    echo "rebuild.sh: wrote $out; describe it in vendor/PATCHES.md"
    ;;
upstream)
    # The base chain's blobs are in this repository, so a patch that does not apply as it is
    # can be merged three ways (its index lines name the base version's files).
    g checkout -q -b attempt "$(g rev-list --max-parents=0 HEAD)"
    unpack "$upstream"
    g add -A
    g commit -q --allow-empty -m "upstream $CRATE $upstream"
    echo "$CRATE $upstream: $(g diff --shortstat HEAD~1 HEAD -- "$VENDORED" | sed 's/^ //') against $BASE_VERSION"
    status=0
    while read -r p; do
        name="$(basename "$p" .patch)"
        if g apply --index --whitespace=nowarn "$p" 2>/dev/null; then
            g commit -q -m "$name"
            echo "  $name: applies"
        elif g apply --3way --whitespace=nowarn "$p" >"$tmp/apply.out" 2>&1; then
            g commit -q -m "$name (three-way merge)"
            echo "  $name: applies by three-way merge"
        else
            conflicts="$(g diff --name-only --diff-filter=U | sed "s|^$VENDORED/||" | tr '\n' ' ')"
            echo "  $name: CONFLICTS${conflicts:+ in $conflicts}"
            sed 's/^/      /' "$tmp/apply.out" | grep -v '^      Applied patch' | head -20
            g reset -q --hard
            g clean -q -fd
            status=1
        fi
    done < <(patch_files)
    if [ -n "$keep" ]; then
        rm -rf "$keep"
        mkdir -p "$(dirname "$keep")"
        mv "$work" "$keep"
        echo "repository of the attempt (branch attempt; master is $BASE_VERSION + patches): $keep"
    fi
    exit "$status"
    ;;
esac
