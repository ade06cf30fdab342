#!/usr/bin/env bash
# Compiles the TypeScript and assembles the wasm kernels into dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
node scripts/build-wasm.mjs
