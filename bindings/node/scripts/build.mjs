// `npm run build [-- CARGO ARGS]`: the addon for this machine, from source.
//
// cargo builds it as a member of the repository's workspace, without `--target`, so that it
// lands in the workspace's target/release beside the CLI and the other bindings and llama.cpp
// is compiled once for all of them. Then @napi-rs/cli's own functions (those `napi build` runs
// after cargo) write the loader index.js and the TypeScript types index.d.ts, generated from
// the Rust. (`napi build` itself always passes `--target`, which puts everything under
// target/<triple>/ and compiles llama.cpp a second time: it is what `npm run build:target`
// runs, for the per-platform packages; see README.md.)
//
// Extra arguments go to cargo: `npm run build -- --features portable`.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { generateTypeDef, parseTriple, readNapiConfig, writeJsBinding } from '@napi-rs/cli'

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)))
const manifest = join(packageDir, 'Cargo.toml')
const cargo = process.env.CARGO ?? 'cargo'
const crate = 'gguf-embed-node'
const library = 'gguf_embed_node'

const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1]
const target = parseTriple(host)
const config = await readNapiConfig(join(packageDir, 'package.json'))
const metadata = JSON.parse(
  execFileSync(cargo, ['metadata', '--format-version', '1', '--no-deps', '--manifest-path', manifest], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  }),
)

// napi-derive writes each item's type into this folder while the crate compiles; the crate is
// recompiled for it (napi-build reruns when these variables change).
const typeDefDir = mkdtempSync(join(tmpdir(), 'gguf-embed-node-types-'))
try {
  const built = spawnSync(cargo, ['build', '--release', '--manifest-path', manifest, '-p', crate, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: {
      ...process.env,
      NAPI_TYPE_DEF_TMP_FOLDER: typeDefDir,
      [`NAPI_FORCE_BUILD_${crate.replace(/-/g, '_').toUpperCase()}`]: String(Date.now()),
    },
  })
  if (built.status !== 0) process.exit(built.status ?? 1)

  const artifact =
    target.platform === 'darwin' ? `lib${library}.dylib` : target.platform === 'win32' ? `${library}.dll` : `lib${library}.so`
  const addon = `${config.binaryName}.${target.platformArchABI}.node`
  copyFileSync(join(metadata.target_directory, 'release', artifact), join(packageDir, addon))

  const { exports, dts } = await generateTypeDef({ typeDefDir, cwd: packageDir, declareBindingTarget: true })
  writeFileSync(join(packageDir, 'index.d.ts'), dts)
  const version = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).version
  await writeJsBinding({
    platform: true,
    idents: exports,
    binaryName: config.binaryName,
    packageName: config.packageName,
    version,
    outputDir: packageDir,
  })
  console.error(`wrote ${addon}, index.js and index.d.ts (${exports.length} exports)`)
} finally {
  rmSync(typeDefDir, { recursive: true, force: true })
}
