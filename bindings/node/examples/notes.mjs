// Indexes a folder of notes in memory and answers a query by cosine similarity.
//
//   node examples/notes.mjs ~/notes "how do I renew my passport?" [MODEL]
//
// MODEL defaults to Qwen/Qwen3-Embedding-0.6B (Q8_0, 639 MB, downloaded once into the Hugging
// Face cache); a .gguf path works too.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

import { Embedder } from 'gguf-embed'

const [folder, query, model = 'Qwen/Qwen3-Embedding-0.6B'] = process.argv.slice(2)
if (!folder || !query) {
  console.error('usage: node notes.mjs FOLDER QUERY [MODEL]')
  process.exit(2)
}

const embedder = await Embedder.load(model, {
  onProgress: ({ phase, fraction }) => process.stderr.write(`\r${phase} ${(fraction * 100).toFixed(0)}%  `),
})
process.stderr.write('\n')

// Documents get no instruction; the vectors come back L2-normalised, so a dot product is the
// cosine similarity.
const names = (await readdir(folder)).filter((name) => /\.(md|txt)$/.test(name))
const notes = await Promise.all(names.map((name) => readFile(join(folder, name), 'utf8')))
const vectors = await embedder.embedDocuments(notes)

// A query gets Qwen's web-search instruction (`task` or `instruction` choose another).
const q = await embedder.embedQuery(query)
const dot = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0)
const ranked = names
  .map((name, i) => ({ name, score: dot(vectors[i], q) }))
  .sort((a, b) => b.score - a.score)
for (const { name, score } of ranked.slice(0, 5)) console.log(`${score.toFixed(3)}  ${name}`)

await embedder.close()
