/**
 * Opening an ONNX Runtime session on the configured execution providers, tried in order (default
 * cuda, then cpu): the exact scorer's model.onnx and a sequential bundle's sequence.onnx.
 */
import ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { DEFAULTS } from '../../core/defaults.js';

/**
 * `threads` > 0: that many intra-op threads, not spinning; 0: ONNX Runtime's own choice (core/defaults.ts onnxThreads).
 * `skipped` gives the providers that failed before the one that opened (logged here when `log` is given).
 */
export async function openOnnxSession(model: Uint8Array, file: string, providers: string[], log?: Logger, threads: number = DEFAULTS.onnxThreads): Promise<{ session: ort.InferenceSession; provider: string; skipped: string[] }> {
  const reasons: string[] = [];
  // ORT prints its own error line when the CUDA library is missing; we report the fall-back ourselves.
  ort.env.logLevel = 'fatal';
  // ONNX Runtime's default is a thread per core that spins between runs: on a small host it
  // takes the cores the event loop and the clients need.
  const threading = threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } } : {};
  for (const p of providers) {
    try {
      // logSeverityLevel 3: ORT's own console lines for a missing CUDA library are errors we handle here.
      const session = await ort.InferenceSession.create(model, { executionProviders: [p], logSeverityLevel: 3, graphOptimizationLevel: 'all', ...threading });
      if (reasons.length) log?.warn({ provider: p, skipped: reasons, file }, fallBackMessage(p));
      return { session, provider: p, skipped: reasons };
    } catch (err) {
      reasons.push(`${p}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no ONNX Runtime execution provider could open ${file} (${reasons.join('; ')})`);
}

export const fallBackMessage = (provider: string) => `onnxruntime: fell back to the ${provider} execution provider`;
