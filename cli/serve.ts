/** `promptmm serve`: the HTTP server on the newest valid bundle; fastify and onnxruntime load only for this command. */
import type { Command } from 'commander';
import { SETTINGS, fromEnv } from '../core/defaults.js';
import { addSettings, log, settingValues } from './options.js';

const KEYS = ['serveName', 'repo', 'host', 'port', 'retrieval', 'ef', 'providers', 'pollSeconds', 'onnxThreads', 'searchThreads', 'cacheUsers', 'maxBatchEntries', 'batchSliceEntries', 'maxBatchEntriesInFlight', 'headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs', 'socketTimeoutMs', 'maxConnections', 'drainTimeoutMs', 'logDir', 'logOnCorrupt', 'commitWindowMs', 'sharedLog', 'allowVolatileLog', 'onlineSteps', 'roundEvery', 'roundSeconds', 'roundLr', 'roundEpochs', 'roundReplay', 'reindexBudgetMs', 'rebuildDuty', 'maxOnlineUsers', 'replaySlice', 'snapshotEvery', 'snapshotSeconds', 'snapshotDir'] as const;

export function register(program: Command): void {
  const cmd = program.command('serve').description('Serve top-K recommendations over HTTP from the newest valid bundle of a model; hot-reloads new versions');
  addSettings(cmd, KEYS)
    .addHelpText('after', `\nEnvironment: ${SETTINGS.token.env} ${SETTINGS.token.description}.`)
    .action(async (o) => {
      const v = settingValues(o, KEYS);
      const { serve } = await import('../server/server.js'); // lazily: training commands never load the server stack
      await serve(
        {
          name: v.serveName!,
          repo: v.repo,
          host: v.host,
          port: v.port,
          retrieval: v.retrieval,
          ef: v.ef,
          providers: v.providers,
          pollSeconds: v.pollSeconds,
          onnxThreads: v.onnxThreads,
          searchThreads: v.searchThreads,
          token: fromEnv('token'),
          cacheUsers: v.cacheUsers,
          logDir: v.logDir,
          logOnCorrupt: v.logOnCorrupt,
          commitWindowMs: v.commitWindowMs,
          sharedLog: v.sharedLog,
          allowVolatileLog: v.allowVolatileLog,
          connections: { headersTimeoutMs: v.headersTimeoutMs, requestTimeoutMs: v.requestTimeoutMs, keepAliveTimeoutMs: v.keepAliveTimeoutMs, socketTimeoutMs: v.socketTimeoutMs, maxConnections: v.maxConnections, drainTimeoutMs: v.drainTimeoutMs },
          requestLimits: { maxBatchEntries: v.maxBatchEntries, sliceEntries: v.batchSliceEntries, maxEntriesInFlight: v.maxBatchEntriesInFlight },
          online: {
            steps: v.onlineSteps,
            roundEvery: v.roundEvery,
            roundSeconds: v.roundSeconds,
            roundLr: v.roundLr,
            roundEpochs: v.roundEpochs,
            replay: v.roundReplay,
            reindexBudgetMs: v.reindexBudgetMs,
            rebuildDuty: v.rebuildDuty,
            maxOnlineUsers: v.maxOnlineUsers,
            replaySlice: v.replaySlice,
            snapshotEvery: v.snapshotEvery,
            snapshotSeconds: v.snapshotSeconds,
            // unset: <repo>/<name>/online-state, chosen by the server
            ...(v.snapshotDir ? { snapshotDir: v.snapshotDir } : {}),
          },
        },
        log,
      );
    });
}
