/**
 * The tfjs backend choice. Best first: tfjs-node-gpu (CUDA), tfjs-node (libtensorflow),
 * wasm (the embedded default: SIMD, one thread in Node), cpu. The native ones are
 * optional dependencies that cannot install without their libtensorflow download, so
 * each is tried and the first that loads wins; the caller logs which.
 */
import * as tf from '@tensorflow/tfjs';
import { registerProjectKernels } from './register-kernels.js';
import { BACKEND_NAMES } from '../../core/defaults.js';

/** Best first; the names are declared with the --backend setting in core/defaults.ts. */
export const BACKENDS = BACKEND_NAMES;
export type BackendChoice = (typeof BACKENDS)[number] | 'auto';

export interface BackendInfo {
  /** tfjs name of the active backend ('tensorflow', 'wasm', 'cpu'). */
  backend: string;
  /** which choice gave it (tensorflow-gpu and tensorflow both register 'tensorflow'). */
  choice: (typeof BACKENDS)[number];
  /** choices tried before it and why each failed. */
  skipped: { choice: string; reason: string }[];
}

async function tryChoice(choice: (typeof BACKENDS)[number]): Promise<string> {
  switch (choice) {
    case 'tensorflow-gpu':
      await import('@tensorflow/tfjs-node-gpu' as string);
      return 'tensorflow';
    case 'tensorflow':
      await import('@tensorflow/tfjs-node' as string);
      return 'tensorflow';
    case 'wasm':
      await import('@tensorflow/tfjs-backend-wasm');
      return 'wasm';
    case 'cpu':
      return 'cpu';
  }
}

let active: BackendInfo | null = null;

/** Selects (once) and initialises a backend; `auto` walks the list best first. */
export async function initEngine(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (active && (choice === 'auto' || choice === active.choice)) return active;
  const candidates = choice === 'auto' ? [...BACKENDS] : [choice];
  const skipped: BackendInfo['skipped'] = [];
  for (const c of candidates) {
    try {
      const name = await tryChoice(c);
      registerProjectKernels();
      const ok = await tf.setBackend(name);
      if (!ok) throw new Error(`tf.setBackend('${name}') returned false`);
      await tf.ready();
      active = { backend: name, choice: c, skipped };
      return active;
    } catch (err) {
      skipped.push({ choice: c, reason: firstLine(err) });
    }
  }
  const why = skipped.map((s) => `${s.choice}: ${s.reason}`).join('; ');
  throw new Error(`no tfjs backend could be initialised (${why})`);
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].slice(0, 200);
}

export { tf };
