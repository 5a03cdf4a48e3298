// The package against the Rust library (the CLI of the same build, bit for bit), Hugging Face
// tokenizers' token ids and transformers' vectors (within the Rust tests' tolerances), and the
// shapes of its results.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { after, before, test } from 'node:test'

import * as esm from '../index.mjs'
import { Embedder, defaultThreads } from '../index.mjs'
import { assertBitEqual, cli, cosine, f32Model, norm, q8Model, reference } from './helpers.mjs'

const require = createRequire(import.meta.url)
const cases = reference()
const texts = cases.map((c) => c.text)
const TASKS = ['web-search', 'similarity', 'bitext', 'code-search']

let f32
let q8
before(async () => {
  f32 = await Embedder.load(f32Model(), { threads: 2 })
  q8 = await Embedder.load(q8Model(), { threads: 2 })
})
after(async () => {
  await f32.close()
  await q8.close()
})

test('the CommonJS and ESM entry points give the same addon', () => {
  const cjs = require('../index.js')
  assert.deepEqual(Object.keys(esm).filter((k) => k !== 'default').sort(), Object.keys(cjs).sort())
  for (const name of Object.keys(cjs)) assert.equal(esm[name], cjs[name], name)
  assert.equal(esm.default.Embedder, esm.Embedder)
  assert.equal(typeof Embedder.load, 'function')
})

test('documents equal the Rust library\'s vectors bit for bit (F32 and Q8_0)', async () => {
  for (const [embedder, model] of [[f32, f32Model()], [q8, q8Model()]]) {
    const vectors = await embedder.embed(texts)
    assertBitEqual(vectors, cli(model, texts), model)
    for (const v of vectors) assert.ok(Math.abs(norm(v) - 1) < 1e-5)
  }
})

test('queries (each task, embedQuery, a custom instruction) equal the CLI bit for bit', async () => {
  const queries = texts.slice(0, 6)
  for (const task of TASKS) {
    assertBitEqual(await f32.embed(queries, { task }), cli(f32Model(), queries, '--task', task), task)
  }
  // Separate calls at once share decodes: with Q8_0 weights a text's vector does not depend on
  // its batch-mates (with F32 weights it moves in the last bits, in the CLI as well).
  const one = await Promise.all(queries.map((q) => q8.embedQuery(q)))
  assertBitEqual(one, cli(q8Model(), queries, '--query'), 'embedQuery')
  const instruction = 'Find the function that does this'
  assertBitEqual(await f32.embed(queries, { instruction }), cli(f32Model(), queries, '-i', instruction), 'instruction')
  // A query is not a document.
  const documents = await q8.embed(queries)
  assert.ok(!Buffer.from(documents[0].buffer).equals(Buffer.from(one[0].buffer)))
})

test('Matryoshka sizes and unnormalised vectors equal the CLI bit for bit', async () => {
  for (const dimensions of [32, 48]) {
    const vectors = await f32.embed(texts, { dimensions })
    assert.equal(vectors[0].length, dimensions)
    assertBitEqual(vectors, cli(f32Model(), texts, '--dim', String(dimensions)), `dimensions ${dimensions}`)
  }
  const raw = await f32.embed(texts.slice(0, 4), { normalize: false })
  assertBitEqual(raw, cli(f32Model(), texts.slice(0, 4), '--no-normalize'), 'unnormalised')
  assert.ok(Math.abs(norm(raw[0]) - 1) > 1e-3)
})

test('vectors are within the Rust tests\' tolerance of transformers', async (t) => {
  // models/reference.json: transformers in float32 (`embedding`) and on the dequantized Q8_0
  // weights (`embedding_q8_0`); tests/reference.rs allows 0.99999 and 0.999.
  for (const [embedder, key, minimum] of [[f32, 'embedding', 0.99999], [q8, 'embedding_q8_0', 0.999]]) {
    let worst = 1
    for (const c of cases) {
      const vector = await embedder.embed(c.text, c.task ? { instruction: c.task } : {})
      const cos = cosine(vector, c[key])
      assert.ok(cos >= minimum, `${key}: case ${c.name} has cosine ${cos} (minimum ${minimum})`)
      worst = Math.min(worst, cos)
    }
    t.diagnostic(`${key}: worst cosine ${worst.toFixed(7)}`)
  }
})

test('token counts equal Hugging Face tokenizers\' (instruction and end-of-text included)', async () => {
  for (const c of cases) {
    const count = await f32.countTokens(c.text, c.task ? { instruction: c.task } : undefined)
    assert.equal(count, c.token_ids.length, c.name)
  }
  assert.ok((await f32.countTokens('read a file', { task: 'code-search' })) > (await f32.countTokens('read a file')))
})

test('a string gives one Float32Array, an array gives an array of them', async () => {
  const one = await f32.embed(texts[0])
  assert.ok(one instanceof Float32Array)
  assert.equal(one.length, f32.info.dimensions)
  assertBitEqual([one], [(await f32.embed([texts[0]]))[0]])
  const many = await f32.embedDocuments(texts.slice(0, 3))
  assert.equal(many.length, 3)
  assertBitEqual(many, await f32.embed(texts.slice(0, 3)))
  // Each vector has a buffer of its own, exactly its size (a copy, not a view of a shared one).
  for (const v of [one, ...many]) {
    assert.equal(v.byteOffset, 0)
    assert.equal(v.buffer.byteLength, v.byteLength)
  }
  assert.deepEqual(await f32.embed([]), [])
  assert.equal((await f32.embed(texts[0], { dimensions: 32 })).length, 32)
})

test('info describes the model and the settings', async () => {
  const info = f32.info
  assert.equal(info.dimensions, 64)
  assert.equal(info.path, f32Model())
  assert.equal(info.threads, 2)
  assert.equal(info.maxTokens, 8192)
  assert.equal(info.truncate, 'end')
  assert.equal(info.contextLength, 32768)
  assert.equal(info.closed, false)
  assert.equal(q8.info.quantization, 'Q8_0')
  // Without `threads`: the physical cores less one, at least one.
  assert.ok(defaultThreads() >= 1)
  const defaults = await Embedder.load(f32Model())
  assert.equal(defaults.info.threads, defaultThreads())
  await defaults.close()
})
