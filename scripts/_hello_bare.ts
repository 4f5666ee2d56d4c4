/**
 * A bare `Deno.serve` hello world: Deno's own baseline for start time and
 * resident memory. Answers 200 "Hello" on every path.
 *
 * `deno run --allow-net scripts/_hello_bare.ts <PORT>`
 *
 * @module
 */

const port = Number(Deno.args[0] ?? "8000");
Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log("ready") }, () => new Response("Hello"));
