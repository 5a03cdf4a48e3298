// What bench/memory.sh measures on the Node side: load a model, embed a JSON-lines corpus as
// the CLI does (every text, 2 threads), and exit.
import { readFileSync } from 'node:fs'

import { Embedder } from '../index.mjs'

const [model, corpus] = process.argv.slice(2)
const texts = readFileSync(corpus, 'utf8')
  .split('\n')
  .filter((line) => line.trim())
  .map((line) => JSON.parse(line).text)
const embedder = await Embedder.load(model, { threads: 2 })
const vectors = await embedder.embed(texts)
if (vectors.length !== texts.length) throw new Error('missing vectors')
await embedder.close()
