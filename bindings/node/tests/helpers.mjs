// Shared by the test files. tests/node.rs runs `node --test` with these variables set:
//
//   GGUF_EMBED_TEST_MODEL     the committed tiny F32 fixture model (models/)
//   GGUF_EMBED_TEST_MODEL_Q8  the same weights quantized to Q8_0
//   GGUF_EMBED_CLI            the gguf-embed CLI of the same build: the Rust library's vectors
//   GGUF_EMBED_REFERENCE      models/reference.json (texts; Hugging Face tokenizers' token ids
//                             and transformers' vectors)
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function env(name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set: run these tests through \`cargo test --release\` (tests/node.rs)`)
  }
  return value
}

export const f32Model = () => env('GGUF_EMBED_TEST_MODEL')
export const q8Model = () => env('GGUF_EMBED_TEST_MODEL_Q8')

/** The cases of models/reference.json. */
export function reference() {
  return JSON.parse(readFileSync(env('GGUF_EMBED_REFERENCE'), 'utf8')).cases
}

/** A folder of its own for one test. */
export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'gguf-embed-node-'))
}

/** The CLI's vectors for `texts` with extra `flags`: the Rust library through another door. */
export function cli(model, texts, ...flags) {
  const input = join(tempDir(), 'texts.jsonl')
  writeFileSync(input, texts.map((text) => JSON.stringify({ text }) + '\n').join(''))
  const out = execFileSync(
    env('GGUF_EMBED_CLI'),
    ['-m', model, '--device', 'cpu', '--threads', '2', '--quiet', '-f', 'jsonl', '--input', input, ...flags],
    { maxBuffer: 1 << 28 },
  )
  return out
    .toString('utf8')
    .trim()
    .split('\n')
    .map((line) => Float32Array.from(JSON.parse(line).embedding))
}

/** The bytes of a typed array. */
const bytes = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

/** Two lists of vectors, equal bit for bit. */
export function assertBitEqual(actual, expected, what = 'vectors') {
  assert.equal(actual.length, expected.length, `${what}: count`)
  actual.forEach((vector, i) => {
    assert.ok(vector instanceof Float32Array, `${what}[${i}] is a Float32Array`)
    assert.equal(vector.length, expected[i].length, `${what}[${i}]: length`)
    assert.ok(bytes(vector).equals(bytes(expected[i])), `${what}[${i}] differs from the expected vector`)
  })
}

export function cosine(a, b) {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / Math.sqrt(na * nb)
}

export const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))

/** Resolves once `condition()` holds, checking once per turn of the event loop. */
export async function until(condition) {
  while (!condition()) {
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** The rejection of `promise` (fails if it fulfils). */
export async function rejection(promise) {
  try {
    await promise
  } catch (error) {
    return error
  }
  assert.fail('the promise was expected to reject')
}
