/**
 * What every route file shares: the typed fastify instance, and the shapes of route schemas
 * (the answers of a route, a route about one disk, a long route that streams progress).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from "fastify";
import { Type, type TSchema, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { ndjsonContentType } from "../ndjson.js";
import { DiskParamsSchema, ErrorSchema, ProgressSchema } from "../schemas.js";

export type TypedApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

const errorResponses = { "4xx": ErrorSchema, "5xx": ErrorSchema } as const;

/** The answers of a route: `ok` on success (200 unless given), and the error body on any 4xx or 5xx. */
export function answers<T>(ok: T): { 200: T } & typeof errorResponses;
export function answers<T, S extends 201 | 204>(ok: T, status: S): { [K in S]: T } & typeof errorResponses;
export function answers<T>(ok: T, status: number = 200): Record<number, T> & typeof errorResponses {
  return { [status]: ok, ...errorResponses } as Record<number, T> & typeof errorResponses;
}

/** The schema of a route about one disk (/v1/disks/:name...): the disk's name is the `name` parameter. */
export function aboutDisk<S extends object>(schema: S): S & { params: typeof DiskParamsSchema } {
  return { ...schema, params: DiskParamsSchema };
}

/** A POST without a body means "all defaults", so curl -X POST works as is. */
export async function emptyBodyAsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

/** OpenAPI description of an NDJSON answer whose lines follow `lineSchema`. */
export function ndjsonResponse(
  description: string,
  lineSchema: TSchema,
): { description: string; content: Record<string, { schema: TSchema }> } {
  return { description, content: { [ndjsonContentType]: { schema: lineSchema } } };
}

const progressLineSchema = Type.Union([Type.Object({ progress: ProgressSchema }), ErrorSchema]);

/**
 * The options of a long-running route (compact, restore, scrub): `schema` gives its summary,
 * body and parameters; the answer is NDJSON progress counted in `unit`, then one line with a
 * `result` of `resultSchema` (sendProgressStream). No body at all means an empty one.
 */
export function progressRoute<S extends { summary: string; body: TSchema }>(schema: S, unit: string, resultSchema: TSchema) {
  // Each result schema has a title (CompactResult, ...): the type's name in the OpenAPI document.
  const { title } = resultSchema as { title?: string };
  const lines = `{progress} lines (${unit}), then one {result} (${title ?? "result"}) or {error} line`;
  return {
    schema: {
      ...schema,
      response: answers(ndjsonResponse(lines, Type.Union([progressLineSchema, Type.Object({ result: resultSchema })]))),
    },
    preValidation: emptyBodyAsObject,
  };
}
