/**
 * A bare Hono hello world on `Deno.serve`: the baseline the node's API is
 * compared with. Answers 200 JSON on every GET path.
 *
 * `deno run --allow-net scripts/_hello_server.ts <PORT>`
 *
 * @module
 */

import { Hono } from "hono";

const app = new Hono();
app.get("*", (c) => c.json({ hello: "world" }));

const port = Number(Deno.args[0] ?? "8000");
Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log("ready") }, app.fetch);
