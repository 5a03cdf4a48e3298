// Compiled (not run) by tests/node.rs with `tsc --strict`: the types @napi-rs/cli generates
// from the Rust say what the API does, through the ESM entry point.
import { Embedder, defaultThreads } from '../index.mjs'
import type { EmbedOptions, EmbedderInfo, LoadOptions, LoadProgress } from '../index.mjs'

export async function check(): Promise<void> {
  const seen: LoadProgress[] = []
  const loadOptions: LoadOptions = {
    quant: 'Q8_0',
    offline: true,
    cacheDir: '/tmp/models',
    threads: defaultThreads(),
    device: 'cpu',
    maxTokens: 512,
    truncate: 'error',
    onProgress: (progress) => {
      seen.push(progress)
    },
    signal: AbortSignal.timeout(60_000),
  }
  const embedder: Embedder = await Embedder.load('Qwen/Qwen3-Embedding-0.6B', loadOptions)
  const one: Float32Array = await embedder.embed('a text')
  const many: Float32Array[] = await embedder.embed(['a', 'b'])
  const texts: readonly string[] = ['a', 'b']
  const options: EmbedOptions = { task: 'code-search', dimensions: 256, normalize: true, signal: new AbortController().signal }
  const more: Float32Array[] = await embedder.embed(texts, options)
  const query: Float32Array = await embedder.embedQuery('q', { instruction: 'Find notes about this' })
  const documents: Float32Array[] = await embedder.embedDocuments(texts)
  const tokens: number = await embedder.countTokens('t', { task: 'similarity' })
  const info: EmbedderInfo = embedder.info
  const phase: 'waiting' | 'downloading' | 'verifying' | 'loading' | undefined = seen[0]?.phase
  console.log(one, many, more, query, documents, tokens, info.dimensions, info.truncate, phase)
  await embedder.close()

  // @ts-expect-error: a number is not a text
  await embedder.embed(42)
  // @ts-expect-error: not one of Qwen's tasks
  await embedder.embed('x', { task: 'poetry' })
  // @ts-expect-error: one string gives one vector, not a list
  const wrong: Float32Array[] = await embedder.embed('x')
  // @ts-expect-error: truncate takes a policy name
  await Embedder.load('m.gguf', { truncate: true })
  console.log(wrong)
}
