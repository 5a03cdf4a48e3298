// The README's example runs: it indexes a folder of notes and ranks them for a query.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { f32Model, tempDir } from './helpers.mjs'

test('examples/notes.mjs indexes a folder of notes and ranks them for a query', () => {
  const notes = tempDir()
  const names = ['passport.md', 'recipes.txt', 'taxes.md', 'ignored.json']
  names.forEach((name, i) => writeFileSync(join(notes, name), `note ${i}: ${name}`))
  const script = fileURLToPath(new URL('../examples/notes.mjs', import.meta.url))
  const out = execFileSync(process.execPath, [script, notes, 'how do I renew my passport?', f32Model()], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines = out.toString().trim().split('\n')
  assert.equal(lines.length, 3, out.toString())
  const rows = lines.map((line) => {
    const [score, name] = line.trim().split(/\s+/)
    return { score: Number(score), name }
  })
  assert.deepEqual(rows.map((r) => r.name).sort(), ['passport.md', 'recipes.txt', 'taxes.md'])
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].score >= rows[i].score)
  assert.ok(rows.every((r) => r.score >= -1 && r.score <= 1))
})
