/** Prometheus metrics of the server (prom-client), on a registry of its own so tests can run several servers. */
import client from 'prom-client';

/** Request latency buckets in seconds, dense around the millisecond range the API targets. */
export const LATENCY_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export type ServerMetrics = ReturnType<typeof createMetrics>;

export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'promptmm_' });
  const m = {
    registry,
    requestDuration: new client.Histogram({
      name: 'promptmm_http_request_duration_seconds',
      help: 'HTTP request duration by route and status code',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    recommendations: new client.Counter({
      name: 'promptmm_recommendations_total',
      help: 'Recommendation lists served, by retrieval path',
      labelNames: ['retrieval'] as const,
      registers: [registry],
    }),
    coldStarts: new client.Counter({ name: 'promptmm_cold_starts_total', help: 'Recommendation lists served from popularity (unknown user or no history)', registers: [registry] }),
    modelVersion: new client.Gauge({ name: 'promptmm_model_version', help: 'Bundle version being served', labelNames: ['model'] as const, registers: [registry] }),
    modelItems: new client.Gauge({ name: 'promptmm_model_items', help: 'Items in the served index', registers: [registry] }),
    modelUsers: new client.Gauge({ name: 'promptmm_model_users', help: 'Users known to the served model', registers: [registry] }),
    pinnedVersion: new client.Gauge({ name: 'promptmm_model_pinned_version', help: 'Version pinned by POST /admin/versions/{n}/pin (0 = none: the newest is served)', registers: [registry] }),
    loads: new client.Counter({ name: 'promptmm_model_loads_total', help: 'Bundle versions loaded and swapped in', registers: [registry] }),
    loadFailures: new client.Counter({ name: 'promptmm_model_load_failures_total', help: 'Bundle versions refused (failed verification or loading)', registers: [registry] }),
    provider: new client.Gauge({ name: 'promptmm_onnx_execution_provider', help: 'ONNX Runtime execution provider in use (value 1 for the active one)', labelNames: ['provider'] as const, registers: [registry] }),
    exactBatchSize: new client.Histogram({
      name: 'promptmm_exact_batch_users',
      help: 'Users per ONNX run of the exact path (micro-batching)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    interactionsAccepted: new client.Counter({ name: 'promptmm_interactions_accepted_total', help: 'Interactions made durable and applied', registers: [registry] }),
    itemsPut: new client.Counter({ name: 'promptmm_items_put_total', help: 'Items added or replaced by PUT /items (made durable and applied)', registers: [registry] }),
    interactionsRejected: new client.Counter({ name: 'promptmm_interactions_rejected_total', help: 'Interactions refused (unknown item)', registers: [registry] }),
    ackSeconds: new client.Histogram({ name: 'promptmm_interaction_ack_seconds', help: 'Time from receipt to durable (group commit + fdatasync) per POST /interactions', buckets: LATENCY_BUCKETS, registers: [registry] }),
    updateSeconds: new client.Histogram({ name: 'promptmm_interaction_update_seconds', help: 'Immediate update (seen set + user BPR steps) per POST /interactions', buckets: LATENCY_BUCKETS, registers: [registry] }),
    roundSeconds: new client.Histogram({ name: 'promptmm_finetune_round_seconds', help: 'Background fine-tuning round duration', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60], registers: [registry] }),
  };
  return m;
}
