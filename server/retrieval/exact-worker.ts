/**
 * The exact scorer's thread (exact.ts): it holds the ONNX session and runs the batches, so that
 * neither a run (onnxruntime-node's `session.run` holds its calling thread for the whole run:
 * 41 ms for a batch at a million items) nor opening a session over a refreshed item table
 * (building the 256 MB model 209 ms, the session 660 ms at 1M) stops the event loop.
 */
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { buildScoringModel } from '../../repository/onnx-scoring-graph.js';
import { openOnnxSession } from './onnx-session.js';
import type { FromExactThread, ToExactThread } from './exact-protocol.js';

const port = parentPort!;
const send = (m: FromExactThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
let session: ort.InferenceSession | null = null;
let table: Float32Array | null = null;
/** Messages run one at a time, in order (a run waits for the open before it, the close for the runs). */
let queue: Promise<void> = Promise.resolve();

async function open(model: Uint8Array, providers: string[], threads: number): Promise<void> {
  try {
    const s = await openOnnxSession(model, 'model.onnx', providers, undefined, threads);
    session = s.session;
    send({ t: 'opened', provider: s.provider, skipped: s.skipped });
  } catch (err) {
    send({ t: 'failed', message: (err as Error).message });
  }
}

async function run(m: Extract<ToExactThread, { t: 'run' }>): Promise<void> {
  try {
    if (!session) throw new Error('the exact scorer has no session');
    const out = await session.run({
      users: new ort.Tensor('float32', m.users, [m.b, m.users.length / m.b]),
      k: new ort.Tensor('int64', BigInt64Array.from([BigInt(m.k)]), [1]),
    });
    const ids = out.items.data as BigInt64Array;
    const rows = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) rows[i] = Number(ids[i]);
    const scores = (out.scores.data as Float32Array).slice();
    send({ t: 'done', q: m.q, rows, scores }, [rows.buffer, scores.buffer]);
  } catch (err) {
    send({ t: 'error', q: m.q, message: (err as Error).message });
  }
}

function handle(m: ToExactThread): Promise<void> | void {
  switch (m.t) {
    case 'open-model':
      return open(m.model, m.providers, m.threads);
    case 'table':
      if (!table || table.length !== m.length) table = new Float32Array(m.length);
      table.set(m.values, m.offset);
      send({ t: 'got' });
      return;
    case 'open-table': {
      let model: Uint8Array;
      try {
        model = buildScoringModel(table ?? new Float32Array(0), m.nItems, m.dim);
      } catch (err) {
        send({ t: 'failed', message: (err as Error).message });
        return;
      }
      table = null; // (the model holds its own copy; ONNX Runtime another)
      return open(model, m.providers, m.threads);
    }
    case 'run':
      return run(m);
    case 'close':
      return (session?.release() ?? Promise.resolve()).then(
        () => send({ t: 'closed' }),
        () => send({ t: 'closed' }),
      );
  }
}

/** A message that threw answers as its kind fails (the queue goes on with the next). */
function failed(m: ToExactThread, err: unknown): void {
  const message = (err as Error).message ?? String(err);
  if (m.t === 'run') send({ t: 'error', q: m.q, message });
  else if (m.t === 'close') send({ t: 'closed' });
  else send({ t: 'failed', message });
}

port.on('message', (m: ToExactThread) => {
  queue = queue.then(() => handle(m)).catch((err: unknown) => failed(m, err));
});
