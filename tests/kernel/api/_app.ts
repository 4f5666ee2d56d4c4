/**
 * The API app over a real node in a temporary data directory (or a given one,
 * kept on dispose), with the local admin token and a `request()` helper.
 */

import { createApp } from "../../../kernel/api/app.ts";
import { Node } from "../../../kernel/node/node.ts";

/** Options of a request through {@linkcode appUnderTest}'s `request`. */
export interface TestRequest {
  method?: string;
  /** Sent as a JSON body. */
  json?: unknown;
  /** Bearer token (default: the admin token). */
  token?: string;
  headers?: Record<string, string>;
}

/** Opens a node and its app; `dataDir` is kept on dispose, a temporary one is removed. */
export async function appUnderTest(dataDir?: string) {
  const dir = dataDir ?? await Deno.makeTempDir({ prefix: "nzcore-api-" });
  const node = await Node.open({ dataDir: dir });
  const app = createApp({ node, listeners: { tcp: null, socket: null }, permissions: {} });
  const admin = await node.tokens.create("admin", { persist: false });
  const request = (path: string, init: TestRequest = {}) => {
    const headers = new Headers({ authorization: `Bearer ${init.token ?? admin.token}`, ...init.headers });
    let body: string | undefined;
    if (init.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(init.json);
    }
    return app.request(path, { method: init.method ?? "GET", headers, body });
  };
  return {
    node,
    dir,
    app,
    admin,
    request,
    async [Symbol.asyncDispose]() {
      await node.close();
      if (!dataDir) await Deno.remove(dir, { recursive: true });
    },
  };
}
