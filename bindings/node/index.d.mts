// Types of the ESM entry point: those @napi-rs/cli generates from the Rust (index.d.ts).
export * from './index.js'
import * as native from './index.js'
export default native
