/** POST /interactions: a batch of (user, item) events, made durable and applied by the online learner. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorReplies, InteractionsBody, InteractionsReply } from '../common/schemas.js';
import type { OnlineLearner } from '../online/online-learner.js';

export const interactionRoutes: FastifyPluginAsyncTypebox<{ online: OnlineLearner }> = async (app, o) => {
  app.post('/interactions', { schema: { body: InteractionsBody, response: { 200: InteractionsReply, ...ErrorReplies } } }, async (req) => o.online.ingest(req.body.interactions));
};
