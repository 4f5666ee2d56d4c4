/**
 * The one error handler: stable codes, and no internal detail in a 500.
 */

import { equal, match, ok } from "node:assert/strict";
import { Hono } from "hono";
import { onError } from "../../../kernel/api/errors.ts";
import { IntegrityError } from "../../../kernel/errors.ts";

/** Answers `GET /` by throwing `error` through `onError`, capturing what is logged. */
async function respond(
  error: Error,
): Promise<{ status: number; body: { error: { code: string; message: string } }; logged: string }> {
  const app = new Hono();
  app.onError(onError);
  app.get("/", () => {
    throw error;
  });
  const logged: unknown[] = [];
  const { error: consoleError } = console;
  console.error = (...args: unknown[]) => logged.push(...args);
  try {
    const response = await app.request("/");
    return { status: response.status, body: await response.json(), logged: logged.map(String).join(" ") };
  } finally {
    console.error = consoleError;
  }
}

Deno.test("an IntegrityError answers 500 integrity without echoing its message, and logs it", async () => {
  const detail = 'Record ["system","token","5f2a9c"] failed authentication';
  const { status, body, logged } = await respond(new IntegrityError(detail));
  equal(status, 500);
  equal(body.error.code, "integrity");
  ok(!body.error.message.includes("5f2a9c"), body.error.message);
  match(body.error.message, /integrity check; the node's log has the details/);
  ok(logged.includes(detail), logged);
});

Deno.test("any other error answers 500 internal without echoing its message", async () => {
  const { status, body, logged } = await respond(new Error("secret internals"));
  equal(status, 500);
  equal(body.error.code, "internal");
  ok(!body.error.message.includes("secret"));
  ok(logged.includes("secret internals"));
});
