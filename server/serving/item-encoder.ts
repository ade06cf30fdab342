/**
 * A bundle's item encoder (issue 18): item_encoder.onnx on onnxruntime-node (execution providers
 * in the configured order, cuda then cpu, like the exact scorer and the sequence encoder), as the
 * server's `ItemEmbedder`: an item's modality features → its vector in the student's item space.
 * Concurrent calls are micro-batched (at most MAX_ITEM_BATCH items a run). The features are
 * validated by the caller (the route): each modality present, of its declared width, finite.
 */
import ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { MicroBatcher } from '../retrieval/micro-batcher.js';
import { openOnnxSession } from '../retrieval/onnx-session.js';
import type { ItemEncoderSection } from '../../repository/bundle-format.js';
import type { ItemEmbedder } from './item-embedder.js';

/** Items per ONNX run, at most. */
export const MAX_ITEM_BATCH = 256;

interface Pending {
  items: readonly Record<string, Float32Array>[];
  resolve: (v: Float32Array[]) => void;
  reject: (e: Error) => void;
}

export class OnnxItemEncoder implements ItemEmbedder {
  private readonly batcher = new MicroBatcher<Pending>(MAX_ITEM_BATCH, (batch) => this.runBatch(batch));

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: string,
    readonly modalities: readonly { name: string; dim: number }[],
    private readonly output: string,
    readonly dim: number,
  ) {}

  /** Opens item_encoder.onnx as the manifest's `itemEncoder` section describes it (checked by bundle-check.ts). */
  static async open(model: Uint8Array, section: ItemEncoderSection, dim: number, providers: string[], log?: Logger, threads?: number): Promise<OnnxItemEncoder> {
    const { session, provider } = await openOnnxSession(model, section.file, providers, log, threads);
    return new OnnxItemEncoder(session, provider, section.modalities.map((m) => ({ name: m.name, dim: m.dim })), section.output, dim);
  }

  embed(items: readonly Record<string, Float32Array>[]): Promise<Float32Array[]> {
    if (this.batcher.closed) return Promise.reject(new Error('item encoder is closed'));
    if (items.length === 0) return Promise.resolve([]);
    for (const it of items) {
      for (const m of this.modalities) {
        const f = it[m.name];
        if (!f || f.length !== m.dim) return Promise.reject(new RangeError(`features.${m.name}: expected ${m.dim} values, got ${f ? f.length : 'none'}`));
      }
    }
    return new Promise((resolve, reject) => this.batcher.add({ items, resolve, reject }));
  }

  /** One ONNX run over the items (at most MAX_ITEM_BATCH in practice): [n × dim]. */
  async embedMany(items: readonly Record<string, Float32Array>[]): Promise<Float32Array> {
    const n = items.length;
    const feeds: Record<string, ort.Tensor> = {};
    for (const m of this.modalities) {
      const x = new Float32Array(n * m.dim);
      items.forEach((it, i) => x.set(it[m.name], i * m.dim));
      feeds[m.name] = new ort.Tensor('float32', x, [n, m.dim]);
    }
    const out = await this.session.run(feeds);
    return out[this.output].data as Float32Array;
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    // The queued calls' items together, in runs of at most MAX_ITEM_BATCH; a failed run fails the calls it held.
    const d = this.dim;
    const flat = batch.flatMap((p, owner) => p.items.map((item) => ({ item, owner })));
    const out = batch.map(() => [] as Float32Array[]);
    const failed = new Map<number, Error>();
    for (let s = 0; s < flat.length; s += MAX_ITEM_BATCH) {
      const part = flat.slice(s, s + MAX_ITEM_BATCH);
      try {
        const v = await this.embedMany(part.map((x) => x.item));
        part.forEach((x, i) => out[x.owner].push(v.slice(i * d, (i + 1) * d)));
      } catch (err) {
        for (const x of part) failed.set(x.owner, err as Error);
      }
    }
    batch.forEach((p, i) => {
      const e = failed.get(i);
      if (e) p.reject(e);
      else p.resolve(out[i]);
    });
  }

  async close(): Promise<void> {
    await this.batcher.close();
    await this.session.release();
  }
}
