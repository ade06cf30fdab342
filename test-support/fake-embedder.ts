/** A fixed random linear map from modality features to item vectors: an ItemEmbedder for API tests (not a trained encoder). */
import { Rng } from '../core/rng.js';
import type { ItemEmbedder } from '../server/serving/item-embedder.js';

export function fakeEmbedder(modalities: { name: string; dim: number }[], outDim: number, seed = 7): ItemEmbedder & { calls: number } {
  const rng = new Rng(seed);
  const maps = modalities.map((m) => Float32Array.from({ length: m.dim * outDim }, () => rng.normal() / Math.sqrt(m.dim)));
  return {
    modalities,
    calls: 0,
    async embed(items) {
      this.calls++;
      return items.map((f) => {
        const v = new Float32Array(outDim);
        modalities.forEach((m, k) => {
          const x = f[m.name];
          const w = maps[k];
          for (let i = 0; i < m.dim; i++) for (let j = 0; j < outDim; j++) v[j] += x[i] * w[i * outDim + j];
        });
        return v;
      });
    },
    async close() {},
  };
}
