/**
 * JSON schemas (TypeBox) of the HTTP API: requests are validated and responses serialized by
 * them, and the TypeScript types of the answers are derived from them (one definition each).
 */
import { Type, type Static } from 'typebox';
import { DEFAULT_K, MAX_BATCH_USERS, MAX_EXCLUDE, MAX_FEATURE_VALUES, MAX_FILTER_LABELS, MAX_ITEM_LABELS, MAX_INTERACTIONS, MAX_K, MAX_LABEL_CHARS, MAX_SESSION_ITEMS } from '../../core/defaults.js';

// The API's bounds are defined once, with every other default, in core/defaults.ts.
export { MAX_BATCH_USERS, MAX_INTERACTIONS, MAX_K, MAX_SESSION_ITEMS };

/**
 * The characters an id may not hold: C0 controls (NUL, tab, newline, …), DEL, C1 controls,
 * U+2028/U+2029 (line breaks to some readers) and lone surrogates (not encodable as UTF-8). The
 * ids travel into logs, the interaction log and the bundle's ids.json, where line-oriented readers would split on one. (The
 * `u` flag ajv compiles patterns with makes the surrogate range match only unpaired halves.)
 */
export const ID_PATTERN = '^[^\\u0000-\\u001F\\u007F-\\u009F\\u2028\\u2029\\uD800-\\uDFFF]*$';
/** What a failed `pattern` means, by pattern, for the 400's message (ajv's own quotes the regex). */
export const PATTERN_MESSAGES: Record<string, string> = {
  [ID_PATTERN]: 'must not contain control characters (NUL, tab, newline, DEL, U+0080–U+009F), U+2028/U+2029 or unpaired surrogates',
};
/** A user or item id: 1 to 256 printable characters. */
const Id = () => Type.String({ minLength: 1, maxLength: 256, pattern: ID_PATTERN });
const UserId = Id();
const K = Type.Integer({ minimum: 1, maximum: MAX_K, default: DEFAULT_K });
/** The retrieval paths a request may ask for (server/retrieval implements one Retriever each). */
const RETRIEVALS = ['ann', 'exact'] as const;
export type RetrievalName = (typeof RETRIEVALS)[number];
// An enum rather than a union of literals: the validation error then lists the allowed values.
const Retrieval = Type.Unsafe<RetrievalName>({ type: 'string', enum: [...RETRIEVALS] });

/** A label (item labels and the label filters): 1 to MAX_LABEL_CHARS characters, no comma, no control character. */
export const LABEL_PATTERN = '^[^,\\u0000-\\u001F\\u007F-\\u009F\\u2028\\u2029\\uD800-\\uDFFF]*$';
PATTERN_MESSAGES[LABEL_PATTERN] = 'must not contain commas or control characters';
const Label = () => Type.String({ minLength: 1, maxLength: MAX_LABEL_CHARS, pattern: LABEL_PATTERN });
export { MAX_EXCLUDE, MAX_FILTER_LABELS };

// Unknown parameters are a 400 (a typo such as `exlude_seen` would otherwise be ignored in silence).
export const RecommendQuery = Type.Object(
  {
    user: UserId,
    k: K,
    exclude_seen: Type.Boolean({ default: true }),
    retrieval: Type.Optional(Retrieval),
    // Issue 18's filters, comma-separated in a query (POST takes arrays; an id holding a comma can be excluded through POST only).
    exclude: Type.Optional(Type.String({ maxLength: MAX_EXCLUDE * 257 })),
    labels: Type.Optional(Type.String({ maxLength: MAX_FILTER_LABELS * (MAX_LABEL_CHARS + 1) })),
    exclude_labels: Type.Optional(Type.String({ maxLength: MAX_FILTER_LABELS * (MAX_LABEL_CHARS + 1) })),
  },
  { additionalProperties: false },
);

export const RecommendBody = Type.Object(
  {
    users: Type.Array(UserId, { minItems: 1, maxItems: MAX_BATCH_USERS }),
    k: K,
    exclude_seen: Type.Boolean({ default: true }),
    retrieval: Type.Optional(Retrieval),
    exclude: Type.Optional(Type.Array(Id(), { maxItems: MAX_EXCLUDE })),
    labels: Type.Optional(Type.Array(Label(), { maxItems: MAX_FILTER_LABELS })),
    exclude_labels: Type.Optional(Type.Array(Label(), { maxItems: MAX_FILTER_LABELS })),
  },
  { additionalProperties: false },
);

export const Recommendation = Type.Object({
  user: Type.String(),
  model_version: Type.Integer(),
  retrieval: Retrieval,
  cold_start: Type.Boolean(),
  items: Type.Array(Type.Object({ item: Type.String(), score: Type.Number() })),
});
export type Recommendation = Static<typeof Recommendation>;

export const RecommendBatch = Type.Object({
  model_version: Type.Integer(),
  results: Type.Array(Recommendation),
});

/** GET /items/{id}/neighbors (issue 18): k and the same filters as GET /recommend. */
export const NeighborsQuery = Type.Object(
  {
    k: K,
    retrieval: Type.Optional(Retrieval),
    exclude: Type.Optional(Type.String({ maxLength: MAX_EXCLUDE * 257 })),
    labels: Type.Optional(Type.String({ maxLength: MAX_FILTER_LABELS * (MAX_LABEL_CHARS + 1) })),
    exclude_labels: Type.Optional(Type.String({ maxLength: MAX_FILTER_LABELS * (MAX_LABEL_CHARS + 1) })),
  },
  { additionalProperties: false },
);

export const Neighbors = Type.Object({
  item: Type.String(),
  model_version: Type.Integer(),
  retrieval: Retrieval,
  items: Type.Array(Type.Object({ item: Type.String(), score: Type.Number() })),
});

/** GET /items/{id}: what the served version knows of an item. */
export const ItemInfo = Type.Object({
  item: Type.String(),
  model_version: Type.Integer(),
  row: Type.Integer(),
  /** exported with the bundle (false: added by PUT /items since) */
  in_bundle: Type.Boolean(),
  /** out of every answer: deleted, or added and its vector still being placed */
  hidden: Type.Boolean(),
  /** deleted by DELETE /items (a PUT brings it back) */
  deleted: Type.Boolean(),
  labels: Type.Array(Type.String()),
  popularity: Type.Integer(),
});

/** PUT /items/{id}: the item's feature vector per modality of the bundle, and its labels (replaced; absent = none). */
export const ItemPutBody = Type.Object(
  {
    features: Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.Array(Type.Number(), { minItems: 1, maxItems: MAX_FEATURE_VALUES })),
    labels: Type.Optional(Type.Array(Label(), { maxItems: MAX_ITEM_LABELS })),
  },
  { additionalProperties: false },
);
export type ItemPutBody = Static<typeof ItemPutBody>;

/** PUT /items/{id}'s answer. */
export const ItemPutReply = Type.Object({
  item: Type.String(),
  model_version: Type.Integer(),
  row: Type.Integer(),
  /** false: the id was known (replaced) */
  created: Type.Boolean(),
  /** the item's vector came from the encoder (false: an item of the bundle keeps its trained vector) */
  placed_from_features: Type.Boolean(),
  log_position: Type.Integer(),
});

/** POST /recommend/session: an anonymous sequence of item ids, oldest first (a sequential bundle only). */
export const SessionBody = Type.Object(
  {
    items: Type.Array(Id(), { maxItems: MAX_SESSION_ITEMS }),
    k: K,
    exclude_seen: Type.Boolean({ default: true }),
    retrieval: Type.Optional(Retrieval),
  },
  { additionalProperties: false },
);

/** A session's answer: a Recommendation without a user. */
export const SessionRecommendation = Type.Object({
  model_version: Type.Integer(),
  retrieval: Retrieval,
  cold_start: Type.Boolean(),
  items: Type.Array(Type.Object({ item: Type.String(), score: Type.Number() })),
});
export type SessionRecommendation = Static<typeof SessionRecommendation>;

export const ErrorReply = Type.Object({
  error: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String()),
});
/** The error answers of the routes that validate input and need a model version. */
export const ErrorReplies = { 400: ErrorReply, 503: ErrorReply };

export const Ready = Type.Object({
  status: Type.String(),
  /** The version pinned by POST /admin/versions/{n}/pin (null: the newest is served), and why it is not served when it cannot be. */
  pinned: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  pin_problem: Type.Optional(Type.String()),
  model: Type.Optional(
    Type.Object({
      name: Type.String(),
      version: Type.Integer(),
      items: Type.Integer(),
      users: Type.Integer(),
      dim: Type.Integer(),
      provider: Type.String(),
      ef: Type.Integer(),
      dataset: Type.String(),
    }),
  ),
  /** A shared log (Redis stream): whether this replica can read it, and how far behind it is. */
  log: Type.Optional(
    Type.Object({
      kind: Type.String(),
      degraded: Type.Boolean(),
      /** the last stream position applied to the served version */
      applied: Type.Integer(),
      lag: Type.Integer(),
      error: Type.Optional(Type.String()),
    }),
  ),
});

/**
 * Largest `ts` (ms since the epoch, as the interaction log stores it): the last instant a JS Date
 * can hold (year 275760), below 2^53, so every accepted value is an exact integer.
 */
export const MAX_TS = 8.64e15;

export const InteractionsBody = Type.Object(
  {
    interactions: Type.Array(
      Type.Object(
        {
          user: UserId,
          item: Id(),
          ts: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TS })),
          /** Issue 18: "dislike" — the item never comes back to that user, whose vector steps away from it. Default "interaction". */
          type: Type.Optional(Type.Unsafe<'interaction' | 'dislike'>({ type: 'string', enum: ['interaction', 'dislike'] })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: MAX_INTERACTIONS },
    ),
  },
  { additionalProperties: false },
);
export type Interaction = Static<typeof InteractionsBody>['interactions'][number];

export const InteractionsReply = Type.Object({
  accepted: Type.Integer(),
  rejected: Type.Array(Type.Object({ index: Type.Integer(), user: Type.String(), item: Type.String(), reason: Type.String() })),
  log_position: Type.Integer(),
});
export type InteractionsReply = Static<typeof InteractionsReply>;
