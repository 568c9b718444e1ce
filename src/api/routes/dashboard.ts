/**
 * The web dashboard (SPEC §3.3): the page and its files on / and /assets (public: they hold no
 * data, and the page asks for the token before it reads anything), and the charts' samples on
 * /v1/dashboard/series (token required like every /v1 route).
 */
import { Type } from "@fastify/type-provider-typebox";
import type { FastifyReply } from "fastify";
import { sendItemStream } from "../item-stream.js";
import { dashboardAssets, dashboardContentSecurityPolicy, dashboardPage } from "../dashboard/assets.js";
import type { MetricSeries } from "../dashboard/metric-series.js";
import { ErrorSchema, FollowFlagSchema, wantsFollow } from "../schemas.js";
import { answers, ndjsonResponse, type TypedApp } from "./route-schema.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Served without the bearer token (server.ts, installTokenCheck): the dashboard's page and files. */
    public?: boolean;
  }
}

const publicRoute = { public: true };

const DiskSampleSchema = Type.Object({
  writeBytesPerSecond: Type.Number(),
  readBytesPerSecond: Type.Number(),
  liveBytes: Type.Number(),
  segmentBytes: Type.Number(),
});
const SeriesSampleSchema = Type.Object(
  { t: Type.Number({ description: "seconds since the epoch" }), disks: Type.Record(Type.String(), DiskSampleSchema) },
  { title: "SeriesSample" },
);

export function registerDashboardRoutes(app: TypedApp, series: MetricSeries | undefined, tokenRequired: boolean): void {
  const page = { contentType: "text/html; charset=utf-8", body: dashboardPage(tokenRequired) };
  const sendAsset = (reply: FastifyReply, url: string) => {
    const asset = url === "/" ? page : dashboardAssets().get(url);
    if (asset === undefined) return reply.callNotFound();
    return reply
      .header("content-type", asset.contentType)
      .header("content-security-policy", dashboardContentSecurityPolicy)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .header("cache-control", url === "/" ? "no-store" : "no-cache")
      .send(asset.body);
  };
  app.get("/", { config: publicRoute, schema: { hide: true } }, (_request, reply) => sendAsset(reply, "/"));
  app.get<{ Params: { "*": string } }>("/assets/*", { config: publicRoute, schema: { hide: true } }, (request, reply) =>
    sendAsset(reply, `/assets/${request.params["*"]}`),
  );

  app.get(
    "/v1/dashboard/series",
    {
      schema: {
        summary:
          "The dashboard's chart samples per disk (rates and space, every 2 s, the last hour): kept ones first; follow=1 streams new ones",
        querystring: Type.Object({ follow: Type.Optional(FollowFlagSchema) }, { additionalProperties: false }),
        response: answers(ndjsonResponse("one SeriesSample per line", Type.Union([SeriesSampleSchema, ErrorSchema]))),
      },
    },
    (request, reply) => {
      const follow = wantsFollow(request.query.follow);
      if (series === undefined || !follow) return sendItemStream(reply, itemsOf(series?.history() ?? []), { waitForFirst: false });
      const stop = new AbortController();
      reply.raw.once("close", () => stop.abort());
      return sendItemStream(reply, series.follow(stop.signal), { waitForFirst: false });
    },
  );
}

async function* itemsOf<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}
