// A model named on the Hub: downloaded once into the Hugging Face cache with progress told to
// JavaScript, then loaded from the cache offline. The Hub is a stand-in on 127.0.0.1 that
// answers as huggingface.co does (a 302 with the file's commit, hash and size, then the bytes).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { test } from 'node:test'

import { Embedder } from '../index.mjs'
import { assertBitEqual, q8Model, rejection, tempDir, until } from './helpers.mjs'

const REPO = 'test-owner/tiny-GGUF'
const FILE = 'tiny-q8_0.gguf'
const COMMIT = 'ab'.repeat(20)

/** Serves `files` (path in the repository -> bytes) of REPO; counts the requests. */
async function mockHub(files) {
  const bySha = new Map()
  const meta = new Map()
  for (const [name, bytes] of Object.entries(files)) {
    const sha = createHash('sha256').update(bytes).digest('hex')
    bySha.set(sha, bytes)
    meta.set(`/${REPO}/resolve/main/${name}`, { sha, size: bytes.length })
  }
  const hub = { requests: 0 }
  const server = createServer((req, res) => {
    hub.requests++
    const path = new URL(req.url, 'http://hub').pathname
    if (path.startsWith('/cdn/')) {
      const bytes = bySha.get(path.slice(5))
      if (!bytes) return res.writeHead(404).end()
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0)
      const headers = { 'Content-Length': bytes.length - start }
      if (start > 0) headers['Content-Range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`
      res.writeHead(start > 0 ? 206 : 200, headers)
      return res.end(req.method === 'HEAD' ? undefined : bytes.subarray(start))
    }
    const file = meta.get(path)
    if (!file) return res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' }).end()
    res.writeHead(302, {
      Location: `http://${req.headers.host}/cdn/${file.sha}`,
      'X-Repo-Commit': COMMIT,
      'X-Linked-Etag': `"${file.sha}"`,
      'X-Linked-Size': String(file.size),
      ETag: '"0123456789abcdef0123456789abcdef01234567"',
    })
    res.end()
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  hub.endpoint = `http://127.0.0.1:${server.address().port}`
  hub.close = () => new Promise((resolve) => server.close(resolve))
  return hub
}

test('a Hub model downloads with progress, then loads from the cache offline', { timeout: 120_000 }, async () => {
  const bytes = readFileSync(q8Model())
  const hub = await mockHub({ [FILE]: bytes })
  const saved = process.env.HF_ENDPOINT
  process.env.HF_ENDPOINT = hub.endpoint
  const cacheDir = tempDir()
  const spec = `hf:${REPO}/${FILE}`
  try {
    const events = []
    const downloaded = await Embedder.load(spec, { cacheDir, threads: 2, onProgress: (p) => events.push(p) })
    // Progress comes through its own thread-safe function: it may arrive after the load.
    await until(() => events.some((p) => p.phase === 'loading' && p.fraction === 1))
    const downloads = events.filter((p) => p.phase === 'downloading')
    assert.ok(downloads.length >= 2, `${downloads.length} download events`)
    assert.ok(downloads[0].file.endsWith(FILE), downloads[0].file)
    assert.ok(downloads.every((p) => p.total === bytes.length))
    for (let i = 1; i < downloads.length; i++) assert.ok(downloads[i].fraction >= downloads[i - 1].fraction)
    assert.equal(downloads.at(-1).downloaded, bytes.length)
    // Reported in order: download, hash check, load; a 16 MB file in at most 1001 steps.
    const phases = [...new Set(events.map((p) => p.phase))]
    assert.deepEqual(phases, ['downloading', 'verifying', 'loading'])
    assert.ok(events.length <= 1001 + 2 + 101, `${events.length} events`)
    assert.ok(downloaded.info.path.startsWith(cacheDir))

    const local = await Embedder.load(q8Model(), { threads: 2 })
    const texts = ['a downloaded model', 'gives the same vectors']
    assertBitEqual(await downloaded.embed(texts), await local.embed(texts))
    await downloaded.close()

    // Offline, with the Hub gone: the cached file, no request.
    await hub.close()
    const requests = hub.requests
    const offline = await Embedder.load(spec, { cacheDir, threads: 2, offline: true })
    assertBitEqual(await offline.embed(texts), await local.embed(texts))
    assert.equal(hub.requests, requests)
    await offline.close()
    await local.close()

    const missing = await rejection(Embedder.load(`hf:${REPO}/other.gguf`, { cacheDir, offline: true }))
    assert.equal(missing.code, 'MODEL')
    assert.match(missing.message, /not in the model cache/)
    // Online with the Hub unreachable: a download error.
    const unreachable = await rejection(Embedder.load(`hf:${REPO}/other.gguf`, { cacheDir }))
    assert.equal(unreachable.code, 'DOWNLOAD')
    assert.match(unreachable.message, /cannot reach/)
  } finally {
    if (saved === undefined) delete process.env.HF_ENDPOINT
    else process.env.HF_ENDPOINT = saved
  }
})

test('a file the Hub does not have rejects with a MODEL error', async () => {
  const hub = await mockHub({})
  const saved = process.env.HF_ENDPOINT
  process.env.HF_ENDPOINT = hub.endpoint
  try {
    const error = await rejection(Embedder.load(`hf:${REPO}/${FILE}`, { cacheDir: tempDir() }))
    assert.equal(error.code, 'MODEL')
    assert.match(error.message, /not found on the Hub/)
  } finally {
    await hub.close()
    if (saved === undefined) delete process.env.HF_ENDPOINT
    else process.env.HF_ENDPOINT = saved
  }
})
