//! The peers' other routes as their official clients call them: Ollama's legacy
//! `/api/embeddings`, `/api/tags`, `/api/show` and `/api/version` through the `ollama`
//! package, TEI's `POST /` and `/info` through `huggingface_hub`'s `InferenceClient`, and TEI's
//! `/tokenize`, `/decode` and `/embed_all` over HTTP (no official client calls them). Vectors
//! are compared with the CLI's, token ids with Hugging Face tokenizers' (models/reference.json).

mod common;

use std::process::Command;

use common::server::{Server, assert_same, cli_vectors};
use common::{case, floats};
use serde_json::{Value, json};

/// Runs a Python script in the tests' environment with `packages`, passing the server's
/// address and `arg`; returns what it printed as JSON.
fn python(packages: &[&str], script: &str, server: &Server, arg: &Value) -> Value {
    let out = Command::new(common::python::python_with(packages))
        .args(["-c", script, &server.base, &arg.to_string()])
        .output()
        .expect("running the test environment's python");
    assert!(
        out.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_official_ollama_client_embeds_lists_and_shows_the_model() {
    let s = Server::start(&[]);
    let texts = [case("english").text.as_str(), case("german").text.as_str()];
    let script = r#"
import json, sys
import ollama
client = ollama.Client(host=sys.argv[1])
texts = json.loads(sys.argv[2])
out = {}
# The legacy call many tools still make: /api/embeddings, one prompt, options ignored.
out["legacy"] = [list(client.embeddings(model="qwen3", prompt=t, options={"temperature": 0.5}).embedding) for t in texts]
out["embed"] = [list(v) for v in client.embed(model="qwen3", input=texts).embeddings]
listed = client.list()
m = listed.models[0]
out["list"] = {"model": m.model, "size": m.size, "digest": m.digest,
               "modified_at": m.modified_at.isoformat() if m.modified_at else None,
               "family": m.details.family, "parameter_size": m.details.parameter_size,
               "quantization_level": m.details.quantization_level, "format": m.details.format}
shown = client.show(m.model)
out["show"] = {"capabilities": list(shown.capabilities or []),
               "family": shown.details.family,
               "quantization_level": shown.details.quantization_level,
               "modelinfo": dict(shown.modelinfo or {})}
print(json.dumps(out))
"#;
    let v = python(&["ollama"], script, &s, &json!(texts));
    let want = cli_vectors(&texts, &[]);
    for call in ["legacy", "embed"] {
        let got: Vec<Vec<f32>> = v[call].as_array().unwrap().iter().map(floats).collect();
        assert_same(&got, &want);
    }
    let info = gguf_embed::inspect(common::f32_model()).unwrap();
    let list = &v["list"];
    assert_eq!(list["model"], "tiny-qwen3-embedding-f32:latest");
    assert_eq!(list["size"], info.file_size);
    let digest = list["digest"].as_str().unwrap();
    let sha: String = {
        use sha2::Digest;
        let bytes = std::fs::read(common::f32_model()).unwrap();
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(digest, format!("sha256:{sha}"));
    assert!(
        list["modified_at"].as_str().unwrap().starts_with("20"),
        "{list}"
    );
    assert_eq!(list["family"], "qwen3");
    assert_eq!(list["format"], "gguf");
    assert_eq!(list["quantization_level"], info.file_type.clone().unwrap());
    assert!(
        list["parameter_size"].as_str().unwrap().ends_with('M'),
        "{list}"
    );
    let show = &v["show"];
    assert_eq!(show["capabilities"], json!(["embedding"]));
    assert_eq!(show["family"], "qwen3");
    assert_eq!(
        show["modelinfo"]["qwen3.embedding_length"],
        info.embedding_length
    );
    assert_eq!(
        show["modelinfo"]["general.parameter_count"],
        info.parameters
    );

    let (status, version) = s.get("/api/version");
    assert_eq!(status, 200);
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn huggingface_hubs_inference_client_embeds_through_the_root_route() {
    let s = Server::start(&[]);
    let q = case("query_web");
    let texts = [case("japanese").text.as_str(), q.text.as_str()];
    let script = r#"
import json, sys
from huggingface_hub import InferenceClient
client = InferenceClient(model=sys.argv[1])
texts = json.loads(sys.argv[2])
out = {"plain": [client.feature_extraction(t).reshape(-1).tolist() for t in texts]}
out["query"] = client.feature_extraction(texts[1], prompt_name="query").reshape(-1).tolist()
# Endpoint info and health are asked of a TEI endpoint with the hf-inference provider.
endpoint = InferenceClient(model=sys.argv[1], provider="hf-inference")
out["info"] = endpoint.get_endpoint_info()
out["healthy"] = endpoint.health_check()
print(json.dumps(out))
"#;
    let v = python(&["huggingface_hub", "numpy"], script, &s, &json!(texts));
    let got: Vec<Vec<f32>> = v["plain"].as_array().unwrap().iter().map(floats).collect();
    assert_same(&got, &cli_vectors(&texts, &[]));
    assert_same(
        &[floats(&v["query"])],
        &cli_vectors(&texts[1..], &["--query"]),
    );
    let info = &v["info"];
    assert_eq!(info["model_id"], "tiny-qwen3-embedding-f32");
    assert_eq!(info["model_type"]["embedding"]["pooling"], "last_token");
    assert_eq!(info["max_input_length"], gguf_embed::DEFAULT_MAX_TOKENS);
    assert_eq!(v["healthy"], true);
}

#[test]
fn tei_tokenize_and_decode_give_the_reference_tokens() {
    let s = Server::start(&[]);
    for name in [
        "english",
        "chinese",
        "nfd_accents",
        "special_token_text",
        "query_web",
    ] {
        let c = case(name);
        let body = match &c.task {
            None => json!({"inputs": c.text}),
            Some(_) => json!({"inputs": c.text, "prompt_name": "query"}),
        };
        let (status, tokens, _) = s.post("/tokenize", &body);
        assert_eq!(status, 200, "{name}: {tokens}");
        let tokens = tokens[0].as_array().unwrap();
        let ids: Vec<u32> = tokens
            .iter()
            .map(|t| t["id"].as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, c.token_ids, "{name}");
        // The last is the end-of-text token, special, without offsets; the others cover the
        // NFC prompt, byte for byte, in order.
        let last = tokens.last().unwrap();
        assert_eq!(last["special"], true);
        assert!(last["start"].is_null() && last["stop"].is_null());
        let prompt = c.nfc_prompt.as_bytes();
        let mut at = 0;
        for t in &tokens[..tokens.len() - 1] {
            assert_eq!(t["special"], false, "{name}: {t}");
            let (start, stop) = (
                t["start"].as_u64().unwrap() as usize,
                t["stop"].as_u64().unwrap() as usize,
            );
            assert_eq!(start, at, "{name}: {t}");
            at = stop;
            assert_eq!(
                t["text"].as_str().unwrap(),
                String::from_utf8_lossy(&prompt[start..stop]),
                "{name}"
            );
        }
        assert_eq!(
            at,
            prompt.len(),
            "{name}: the offsets do not cover the prompt"
        );

        // Back to text: the prompt without the end-of-text token, or with it when asked.
        let (status, text, _) = s.post("/decode", &json!({"ids": ids}));
        assert_eq!(status, 200, "{text}");
        assert_eq!(text, json!(c.nfc_prompt), "{name}");
        let (_, with, _) = s.post(
            "/decode",
            &json!({"ids": [ids], "skip_special_tokens": false}),
        );
        assert_eq!(
            with,
            json!([format!("{}<|endoftext|>", c.nfc_prompt)]),
            "{name}"
        );
    }
    // Without special tokens, and several inputs at once.
    let (_, both, _) = s.post(
        "/tokenize",
        &json!({"inputs": ["a", "b c"], "add_special_tokens": false}),
    );
    assert_eq!(both.as_array().unwrap().len(), 2);
    assert!(
        both[1]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["special"] == false)
    );

    // Errors in TEI's shape: an id outside the vocabulary, and the route that is not served.
    let (status, body, _) = s.post("/decode", &json!({"ids": [4_000_000_000u32]}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error_type"], "Validation");
    let (status, body, _) = s.post("/embed_all", &json!({"inputs": "x"}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("/embed"), "{body}");
}
