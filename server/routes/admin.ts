/** POST /admin/reload (load the newest version now, retrying refused ones) and, with online learning, POST /admin/finetune (one round now). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { OnlineLearner } from '../online/online-learner.js';
import type { Reloader } from '../serving/reloader.js';

export interface AdminRoutesOptions {
  reloader: Reloader;
  online?: OnlineLearner;
}

export const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, o) => {
  app.post('/admin/reload', async () => o.reloader.reload(true));
  const online = o.online;
  if (online) {
    app.post('/admin/finetune', async () => {
      await online.round();
      return { status: 'done' };
    });
  }
};
