// The ESM entry point: the same addon as the CommonJS one (index.js, which @napi-rs/cli
// generates to load the .node file built for this platform).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const native = require('./index.js')

export const { Embedder, defaultThreads, __napiBindingTarget } = native
export default native
