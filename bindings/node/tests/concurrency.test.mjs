// Never in the app's way: the event loop and libuv's pool stay free while the engine works,
// and calls made at the same time share the engine's decodes and get the vectors they get
// alone. The engine is held with `_pauseForTests` (a test-only hold after a decode, before any
// result is sent), so "pending" is a fact, not a matter of timing.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, test } from 'node:test'

import { Embedder } from '../index.mjs'
import { assertBitEqual, env, q8Model, until } from './helpers.mjs'

// Q8_0 weights: a text's vector is the same bit for bit whatever shares its decode.
let embedder
before(async () => {
  embedder = await Embedder.load(q8Model(), { threads: 2 })
})
after(async () => {
  embedder._pauseForTests(false)
  await embedder.close()
})

/** Resolves after `n` more firings of a 10 ms interval timer that counts into `state.ticks`. */
function ticksLater(state, n) {
  const target = state.ticks + n
  return until(() => state.ticks >= target)
}

test('a 10 ms timer keeps firing and fs.readFile completes while 50 embeds are pending', { timeout: 120_000 }, async () => {
  embedder._pauseForTests(true)
  let resolved = 0
  const calls = Array.from({ length: 50 }, (_, i) =>
    embedder.embed(`note number ${i}`).then((vector) => {
      resolved++
      return vector
    }),
  )
  const state = { ticks: 0 }
  const timer = setInterval(() => state.ticks++, 10)
  try {
    // Every text has reached the engine, which holds them.
    await until(() => embedder.info.queued === 50)
    await ticksLater(state, 3)
    // More reads at once than libuv has pool threads (4 by default): none is held by an embed.
    const reads = await Promise.all(Array.from({ length: 8 }, () => readFile(env('GGUF_EMBED_REFERENCE'))))
    assert.ok(reads.every((r) => r.length > 0))
    await ticksLater(state, 3)
    assert.equal(resolved, 0, 'the embeds were pending all along')
    assert.equal(embedder.info.pending, 50)
  } finally {
    embedder._pauseForTests(false)
  }
  const vectors = await Promise.all(calls)
  clearInterval(timer)
  assert.equal(resolved, 50)
  const alone = []
  for (let i = 0; i < 50; i++) alone.push(await embedder.embed(`note number ${i}`))
  assertBitEqual(vectors, alone)
})

test('50 concurrent calls resolve right, each as if alone, sharing a few decodes', { timeout: 120_000 }, async () => {
  // Short texts (a decode holds 512 tokens and 32 texts) with different options per call.
  const calls = Array.from({ length: 50 }, (_, i) => {
    const text = `item ${i}: ${['a cat sat on the mat', 'read a file in rust', '東京の天気', 'bonjour à tous'][i % 4]}`
    const options = [{}, { task: 'code-search' }, { dimensions: 32 }, { instruction: 'Find notes', normalize: false }][i % 4]
    return [text, options]
  })
  const alone = []
  for (const [text, options] of calls) alone.push(await embedder.embed(text, options))

  const before = embedder.info.decodes
  embedder._pauseForTests(true)
  let together
  try {
    together = calls.map(([text, options]) => embedder.embed(text, options))
    await until(() => embedder.info.queued === 50)
  } finally {
    embedder._pauseForTests(false)
  }
  const vectors = await Promise.all(together)
  assertBitEqual(vectors, alone)
  // The decode held by the pause, then the other texts 32 at a time: 3 decodes, or 4 if the
  // token budget splits one; one decode per call would be 50.
  const decodes = embedder.info.decodes - before
  assert.ok(decodes <= 4, `50 concurrent calls took ${decodes} decodes`)
  assert.equal(embedder.info.pending, 0)
})
