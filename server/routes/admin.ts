/** POST /admin/reload (load the newest version now, retrying refused ones) and, with online learning, POST /admin/finetune (one round now). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { OnlineLearner } from '../online/online-learner.js';
import { PinError, type Reloader } from '../serving/reloader.js';

export interface AdminRoutesOptions {
  reloader: Reloader;
  online?: OnlineLearner;
}

/**
 * A refusal reason with every absolute path made repository-relative: the part from the model
 * folder on (`NAME/<version>/file`), found by the version's number among the path's folders; a
 * path without it keeps only its file name. Where the repository lives is the host's business.
 */
export function repositoryRelative(reason: string, version: number): string {
  return reason.replace(/(^|[\s"'(=])(\/[^\s"'():;,]+)/g, (_m, lead: string, path: string) => {
    const parts = path.split('/').filter(Boolean);
    const at = parts.lastIndexOf(String(version));
    return lead + (at >= 1 ? parts.slice(at - 1).join('/') : (parts.at(-1) ?? ''));
  });
}

export const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, o) => {
  // Versions (issue 18): pin one (rollback without deleting anything), unpin.
  app.post<{ Params: { n: string } }>('/admin/versions/:n/pin', async (req, reply) => {
    const raw = req.params.n;
    if (!/^[1-9][0-9]{0,14}$/.test(raw)) return reply.code(400).send({ error: 'Bad Request', message: `params.n: a version is a positive integer, got ${JSON.stringify(raw.slice(0, 40))}`, field: 'n' });
    try {
      const r = await o.reloader.pin(Number(raw));
      return { pinned: r.version, version: o.reloader.served };
    } catch (err) {
      if (err instanceof PinError) {
        return reply.code(err.statusCode).send({ error: err.statusCode === 404 ? 'Not Found' : 'Conflict', message: repositoryRelative(err.message, Number(raw)) });
      }
      throw err;
    }
  });
  app.post('/admin/versions/unpin', async () => {
    const r = await o.reloader.unpin();
    return { pinned: null, unpinned: r.unpinned, version: o.reloader.served, refused: r.refused.map((x) => ({ ...x, reason: repositoryRelative(x.reason, x.version) })) };
  });
  app.post('/admin/reload', async () => {
    const r = await o.reloader.reload(true);
    return { ...r, refused: r.refused.map((x) => ({ ...x, reason: repositoryRelative(x.reason, x.version) })) };
  });
  const online = o.online;
  if (online) {
    app.post('/admin/finetune', async (_req, reply) => {
      // A round on one replica would move its item vectors away from the others'.
      if (online.follower) return reply.code(409).send({ error: 'Conflict', message: 'this replica follows a shared log: fine-tuning rounds run in `promptmm finetune` (one lease holder) and arrive as new versions' });
      await online.round();
      return { status: 'done' };
    });
  }
};
