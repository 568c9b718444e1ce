/** /v1/events: the event log as NDJSON, oldest first; `?follow=1` streams new events as they happen. */
import { Type } from "@fastify/type-provider-typebox";
import type { EventOperations } from "../../store/operations/index.js";
import { sendItemStream } from "../item-stream.js";
import { ErrorSchema, EventsQuerySchema, StoreEventSchema, wantsFollow } from "../schemas.js";
import { answers, ndjsonResponse, type TypedApp } from "./route-schema.js";

export function registerEventRoutes(app: TypedApp, operations: EventOperations): void {
  app.get(
    "/v1/events",
    {
      schema: {
        summary: "The event log (what the policies and the server did and saw), oldest first; follow=1 streams new ones",
        querystring: EventsQuerySchema,
        response: answers(
          ndjsonResponse(
            "one StoreEvent per line; a final {error} line if the stream fails midway",
            Type.Union([StoreEventSchema, ErrorSchema]),
          ),
        ),
      },
    },
    (request, reply) => {
      const follow = wantsFollow(request.query.follow);
      const stop = new AbortController();
      // The reader went away: end the follow (the store's subscription goes with it).
      reply.raw.once("close", () => stop.abort());
      const events = operations.readEvents({ disk: request.query.disk, since: request.query.since, follow }, stop.signal);
      return sendItemStream(reply, events, { waitForFirst: !follow });
    },
  );
}
