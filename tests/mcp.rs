//! `gguf-embed mcp` driven over stdio by the official Python MCP client (`pip install mcp`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{cli, f32_model, python::python_with, repos::numbered_files};
use gguf_embed::index::WriterLock;
use serde_json::Value;

/// The client: lists the tools, watches `index_status` while the server's first update runs,
/// searches for a planted definition, updates, and sends bad arguments. Prints one JSON
/// object with what it saw.
const CLIENT: &str = r#"
import asyncio, json, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
try:  # mcp 2.x
    from mcp.shared.exceptions import MCPError as McpError
except ImportError:  # mcp 1.x
    from mcp.shared.exceptions import McpError

def field(obj, snake, camel):
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)

async def call(session, name, args):
    try:
        r = await session.call_tool(name, args)
        text = "".join(c.text for c in r.content if getattr(c, "type", "") == "text")
        return {"ok": not field(r, "is_error", "isError"), "text": text,
                "structured": field(r, "structured_content", "structuredContent")}
    except McpError as e:
        return {"ok": False, "protocol_error": True, "text": str(e.error.message), "code": e.error.code}

async def main():
    cli, repo, model, wait = sys.argv[1:5]
    # Slow decodes (a test-only delay) make the embedding observable from status calls.
    params = StdioServerParameters(command=cli, args=["mcp", "--repo", repo, "-m", model],
                                   env={"HF_HUB_OFFLINE": "1",
                                        "GGUF_EMBED_TEST_DECODE_DELAY_MS": "5"})
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            out["schemas"] = {t.name: field(t, "input_schema", "inputSchema") for t in tools.tools}
            statuses = []
            if wait == "wait":
                for _ in range(100000):
                    s = await call(session, "index_status", {})
                    if not s["ok"]:
                        raise SystemExit("index_status failed: " + s["text"])
                    statuses.append(s["structured"])
                    ind = s["structured"]["indexing"]
                    if not ind["in_progress"] and (ind["last_report"] or ind["last_error"]):
                        break
                    await asyncio.sleep(0.05)
            else:
                statuses.append((await call(session, "index_status", {}))["structured"])
            out["statuses"] = statuses
            out["search"] = await call(session, "search_code", {"query": "reconcileLedgerBalances", "limit": 3})
            out["search_lexical"] = await call(session, "search_code", {"query": "reconcileLedgerBalances", "mode": "lexical", "glob": ["**/*.rs"], "context_lines": 1})
            out["update"] = await call(session, "update_index", {})
            out["bad"] = {
                "missing_query": await call(session, "search_code", {}),
                "wrong_type": await call(session, "search_code", {"query": "x", "limit": "ten"}),
                "bad_mode": await call(session, "search_code", {"query": "x", "mode": "fuzzy"}),
                "unknown_arg": await call(session, "search_code", {"query": "x", "colour": "red"}),
                "bad_lang": await call(session, "search_code", {"query": "x", "lang": ["klingon"]}),
                "unknown_tool": await call(session, "no_such_tool", {}),
            }
            out["after_errors"] = await call(session, "search_code", {"query": "reconcileLedgerBalances", "mode": "lexical"})
    print(json.dumps(out))

asyncio.run(main())
"#;

/// A repository large enough that its first update takes a while, with one planted
/// definition.
fn repo_with_planted_definition(files: usize) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    numbered_files(repo.path(), files);
    std::fs::write(
        repo.path().join("m00/ledger.rs"),
        "/// Makes the books add up.\npub fn reconcileLedgerBalances(book: &mut Book) {\n    book.fix();\n}\n",
    )
    .unwrap();
    repo
}

fn drive(repo: &Path, wait: &str) -> Value {
    let python = python_with(&["mcp>=1.9"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let out = Command::new(python)
        .arg(&script)
        .arg(cli())
        .arg(repo)
        .arg(f32_model())
        .arg(wait)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_official_client_lists_calls_and_gets_errors_for_bad_arguments() {
    let repo = repo_with_planted_definition(1500);
    let seen = drive(repo.path(), "wait");
    assert_eq!(
        seen["tools"],
        serde_json::json!(["index_status", "search_code", "update_index"])
    );
    let search_schema = &seen["schemas"]["search_code"]["properties"];
    for arg in [
        "query",
        "mode",
        "limit",
        "glob",
        "lang",
        "path",
        "threshold",
        "context_lines",
        "max_tokens",
        "offset",
    ] {
        assert!(search_schema.get(arg).is_some(), "{arg}");
    }

    // index_status during the first pass: in progress, with counts that only grow and end
    // where the index ends.
    let statuses = seen["statuses"].as_array().unwrap();
    let during: Vec<&Value> = statuses
        .iter()
        .filter(|s| s["indexing"]["in_progress"] == true)
        .collect();
    let n = |v: &Value| v.as_u64().unwrap();
    for s in &during {
        let i = &s["indexing"];
        assert!(n(&i["done_files"]) <= n(&i["planned_files"]) || i["planned_files"] == 0);
        assert!(n(&s["coverage"]["embedded"]) <= n(&s["coverage"]["total"]));
    }
    // The embedding step: the embedded count grows from status to status, several times.
    let embedding: Vec<u64> = during
        .iter()
        .filter(|s| s["indexing"]["phase"] == "embedding")
        .map(|s| n(&s["coverage"]["embedded"]))
        .collect();
    assert!(
        embedding.windows(2).all(|w| w[0] <= w[1]),
        "the embedded count went back: {embedding:?}"
    );
    let mut distinct = embedding.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
        "too few status calls saw the embedding progress: {embedding:?}"
    );
    let last = statuses.last().unwrap();
    assert_eq!(last["files"], 1501);
    let chunks = n(&last["chunks"]);
    assert!(distinct[0] < chunks, "{embedding:?}");
    assert_eq!(n(&last["coverage"]["embedded"]), chunks);
    assert_eq!(n(&last["coverage"]["total"]), chunks);
    assert_eq!(last["indexing"]["in_progress"], false);
    assert_eq!(last["indexing"]["last_report"]["files"], 1501);
    assert_eq!(last["writer"], true);
    assert_eq!(last["model"]["quant"], "F32");

    // The planted definition comes first, as text and as structured content, with the
    // coverage of the index it searched.
    for key in ["search", "search_lexical"] {
        let r = &seen[key];
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["structured"]["coverage"]["total"], last["chunks"], "{r}");
        let results = r["structured"]["results"].as_array().unwrap();
        assert_eq!(results[0]["path"], "m00/ledger.rs", "{key}: {r}");
        assert!(r["text"].as_str().unwrap().starts_with("m00/ledger.rs:1-4"));
        assert!(
            r["text"]
                .as_str()
                .unwrap()
                .contains("reconcileLedgerBalances")
        );
    }
    assert_eq!(seen["search"]["structured"]["next_offset"], 3);
    assert_eq!(seen["update"]["ok"], true);
    assert_eq!(seen["update"]["structured"]["embedded_files"], 0);
    assert_eq!(seen["update"]["structured"]["unchanged_files"], 1501);
    assert_eq!(
        seen["update"]["structured"]["coverage"]["embedded"],
        last["chunks"]
    );

    // Bad arguments are MCP errors, and the server keeps serving.
    for (name, r) in seen["bad"].as_object().unwrap() {
        assert_eq!(r["ok"], false, "{name}: {r}");
    }
    assert_eq!(seen["bad"]["bad_lang"]["protocol_error"], true);
    assert!(
        seen["bad"]["bad_lang"]["text"]
            .as_str()
            .unwrap()
            .contains("unknown language")
    );
    assert_eq!(seen["after_errors"]["ok"], true);
}

#[test]
fn a_server_beside_another_writer_only_searches() {
    let repo = repo_with_planted_definition(20);
    // Build the index first, then hold its writer lock as another process would.
    let model = f32_model();
    let out = Command::new(cli())
        .args(["index", "--repo", repo.path().to_str().unwrap()])
        .args(["-m", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let db = repo.path().join(".gguf-embed/index.sqlite");
    let lock = WriterLock::acquire(&db, false).unwrap().unwrap();
    std::fs::write(repo.path().join("m01/new.rs"), "fn added_later() {}\n").unwrap();
    let seen = drive(repo.path(), "once");
    let status = &seen["statuses"][0];
    assert_eq!(status["writer"], false);
    assert_eq!(status["files"], 21, "the server wrote nothing");
    assert_eq!(seen["update"]["ok"], false);
    assert!(
        seen["update"]["text"]
            .as_str()
            .unwrap()
            .contains("another gguf-embed process")
    );
    assert_eq!(
        seen["search"]["structured"]["results"][0]["path"],
        "m00/ledger.rs"
    );
    drop(lock);
}
