// Assembles trainer/engine/wasm/*.wat into dist/trainer/engine/wasm/*.wasm (run by `npm run build`).
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import initWabt from 'wabt';

const wabt = await initWabt();
const src = 'trainer/engine/wasm';
const dst = 'dist/trainer/engine/wasm';
mkdirSync(dst, { recursive: true });
for (const f of readdirSync(src).filter((n) => n.endsWith('.wat'))) {
  const mod = wabt.parseWat(f, readFileSync(join(src, f), 'utf8'), { simd: true, bulk_memory: true });
  mod.validate();
  const { buffer } = mod.toBinary({});
  writeFileSync(join(dst, f.replace(/\.wat$/, '.wasm')), Buffer.from(buffer));
  mod.destroy();
}
