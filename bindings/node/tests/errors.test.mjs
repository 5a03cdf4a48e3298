// Bad input and faults: a clear Error with a `code` (named as the C API's statuses), and an
// embedder that keeps working. AbortSignal and close().
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { openSync, readSync, closeSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { Embedder } from '../index.mjs'
import { assertBitEqual, cli, f32Model, reference, rejection, tempDir, until } from './helpers.mjs'

const texts = reference().map((c) => c.text)
const long = reference().find((c) => c.name === 'long').text

let embedder
let expected
before(async () => {
  embedder = await Embedder.load(f32Model(), { threads: 2 })
  expected = await embedder.embed(texts)
})
after(async () => {
  embedder._pauseForTests(false)
  await embedder.close()
})

/** The embedder still gives the same vectors. */
async function stillWorks() {
  assertBitEqual(await embedder.embed(texts), expected, 'after the error')
}

function assertError(error, code, pattern, type = Error) {
  assert.ok(error instanceof type, `${error} is a ${type.name}`)
  assert.equal(error.code, code, `${error.message}`)
  assert.match(error.message, pattern)
}

test('a wrong path, a corrupt GGUF, a truncated one and a folder reject with MODEL errors', async () => {
  const dir = tempDir()
  const missing = join(dir, 'missing.gguf')
  assertError(await rejection(Embedder.load(missing)), 'MODEL', /no such file/)

  const corrupt = join(dir, 'corrupt.gguf')
  writeFileSync(corrupt, Buffer.from('GGUF this is not a model at all'.repeat(100)))
  assertError(await rejection(Embedder.load(corrupt)), 'MODEL', /corrupt\.gguf/)

  // The first megabyte of a real model: its header promises tensors the file lacks.
  const cut = join(dir, 'cut.gguf')
  const head = Buffer.alloc(1 << 20)
  const fd = openSync(f32Model(), 'r')
  readSync(fd, head, 0, head.length, 0)
  closeSync(fd)
  writeFileSync(cut, head)
  assertError(await rejection(Embedder.load(cut)), 'MODEL', /cut\.gguf/)

  const folder = join(dir, 'folder.gguf')
  mkdirSync(folder)
  assertError(await rejection(Embedder.load(folder)), 'MODEL', /folder\.gguf/)
  assertError(await rejection(Embedder.load('no-such-model')), 'MODEL', /unknown model/)
  await stillWorks()
})

test('texts that are not strings reject with a TypeError that names them', async () => {
  assertError(await rejection(embedder.embed(['a', 3, 'c'])), 'INVALID_ARGUMENT', /texts\[1\] is a number/, TypeError)
  assertError(await rejection(embedder.embed(['a', null])), 'INVALID_ARGUMENT', /texts\[1\] is null/, TypeError)
  assertError(await rejection(embedder.embed(42)), 'INVALID_ARGUMENT', /texts must be a string or an array/, TypeError)
  assertError(await rejection(embedder.embed()), 'INVALID_ARGUMENT', /not undefined/, TypeError)
  assertError(await rejection(embedder.embedQuery(['a'])), 'INVALID_ARGUMENT', /query must be a string/, TypeError)
  assertError(await rejection(embedder.embedDocuments('a')), 'INVALID_ARGUMENT', /documents must be/, TypeError)
  assertError(await rejection(embedder.countTokens({})), 'INVALID_ARGUMENT', /text must be a string/, TypeError)
  await stillWorks()
})

test('bad options reject with INVALID_ARGUMENT errors that name them', async () => {
  assertError(await rejection(embedder.embed('x', { dimensions: 7 })), 'INVALID_ARGUMENT', /dimensions must be between 32 and 64/)
  assertError(await rejection(embedder.embed('x', { dimensions: 40.5 })), 'INVALID_ARGUMENT', /dimensions must be a whole number/)
  assertError(await rejection(embedder.embed('x', { dimensions: 'big' })), 'INVALID_ARGUMENT', /dimensions/, TypeError)
  assertError(await rejection(embedder.embed('x', { task: 'poetry' })), 'INVALID_ARGUMENT', /poetry/)
  assertError(await rejection(embedder.embed('x', { task: 'bitext', instruction: 'y' })), 'INVALID_ARGUMENT', /either task or instruction/)
  assertError(await rejection(embedder.embed('x', 'fast')), 'INVALID_ARGUMENT', /options must be an object/, TypeError)
  assertError(await rejection(Embedder.load(f32Model(), { threads: 0 })), 'INVALID_ARGUMENT', /threads/)
  assertError(await rejection(Embedder.load(f32Model(), { truncate: 'middle' })), 'INVALID_ARGUMENT', /truncate/)
  assertError(await rejection(Embedder.load(f32Model(), { device: 'tpu' })), 'INVALID_ARGUMENT', /unknown device/)
  assertError(await rejection(Embedder.load(f32Model(), { maxTokens: 1e9 })), 'INVALID_ARGUMENT', /token limit/)
  await stillWorks()
})

test('an over-long text with truncate "error" rejects with TOO_LONG; other policies cut it', async () => {
  const strict = await Embedder.load(f32Model(), { threads: 2, maxTokens: 64, truncate: 'error' })
  try {
    const error = await rejection(strict.embed(['short', long]))
    assertError(error, 'TOO_LONG', /input 1 has \d+ tokens, more than the limit of 64/)
    assertBitEqual([await strict.embed('short')], [await embedder.embed('short')])
  } finally {
    await strict.close()
  }
  for (const truncate of ['end', 'start']) {
    const cut = await Embedder.load(f32Model(), { threads: 2, maxTokens: 64, truncate })
    try {
      assert.equal(cut.info.truncate, truncate)
      const flag = truncate === 'end' ? 'yes' : 'start'
      assertBitEqual([await cut.embed(long)], cli(f32Model(), [long], '--max-tokens', '64', '--truncate', flag), truncate)
    } finally {
      await cut.close()
    }
  }
  await stillWorks()
})

test('an AbortSignal rejects its call at once, and the call\'s texts are never embedded', { timeout: 120_000 }, async () => {
  const start = embedder.info.decodes
  embedder._pauseForTests(true)
  let held
  let aborted
  const controller = new AbortController()
  try {
    // The engine holds its first decode; the aborted call waits behind it.
    held = embedder.embed('held by the engine')
    await until(() => embedder.info.decodes === start + 1)
    aborted = embedder.embed(texts, { signal: controller.signal })
    await until(() => embedder.info.queued === 1 + texts.length)
    controller.abort(new Error('the user left'))
    // Rejected while the engine is still held: nobody waited for it.
    const error = await rejection(aborted)
    assert.equal(error.name, 'AbortError')
    assert.equal(error.code, 'ABORT_ERR')
    assert.equal(error.cause.message, 'the user left')
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  } finally {
    embedder._pauseForTests(false)
  }
  await held
  await until(() => embedder.info.queued === 0)
  assert.equal(embedder.info.decodes, start + 1, 'the aborted texts were never decoded')
  await stillWorks()
})

test('signals that fired already, long-lived signals and wrong signals', async () => {
  const error = await rejection(embedder.embed('x', { signal: AbortSignal.abort() }))
  assert.equal(error.name, 'AbortError')
  assert.equal(error.code, 'ABORT_ERR')
  // One signal for many calls: each call removes its listener when it settles.
  const controller = new AbortController()
  await Promise.all(texts.map((t) => embedder.embed(t, { signal: controller.signal })))
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  assertError(await rejection(embedder.embed('x', { signal: {} })), 'INVALID_ARGUMENT', /AbortSignal/, TypeError)
  const load = await rejection(Embedder.load(f32Model(), { signal: AbortSignal.abort() }))
  assert.equal(load.name, 'AbortError')
  await stillWorks()
})

test('close() rejects pending and later calls with CLOSED and resolves once the engine stopped', { timeout: 120_000 }, async () => {
  const closing = await Embedder.load(f32Model(), { threads: 2 })
  closing._pauseForTests(true)
  const pending = closing.embed('pending while closing')
  await until(() => closing.info.queued === 1)
  const closed = closing.close()
  assertError(await rejection(pending), 'CLOSED', /closed/)
  assertError(await rejection(closing.embed('after')), 'CLOSED', /closed/)
  assertError(await rejection(closing.countTokens('after')), 'CLOSED', /closed/)
  assert.equal(closing.info.closed, true)
  closing._pauseForTests(false)
  await closed
  await closing.close()
  await stillWorks()
})
