import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import { Hono } from "hono";
import { runTransportSuite } from "./compliance.ts";
import { acceptWebSocket, type AcceptWebSocketOptions, WebSocketTransport } from "../../transport/websocket.ts";
import { DialError, ProtocolError, TransportError } from "../../transport/errors.ts";
import type { Duplex, ListenOptions } from "../../transport/types.ts";

const MiB = 1024 * 1024;

function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

runTransportSuite("websocket", () => ({
  transport: new WebSocketTransport({ readBufferLimit: MiB }),
  listenAddr: () => "ws://127.0.0.1:0/p2p",
  deadAddr: () => Promise.resolve(`ws://127.0.0.1:${deadPort()}/p2p`),
  halfClose: false,
  abortIsError: true,
  backpressure: "abort",
  // The reader's limit, the writer's bufferedAmount mark, and what the kernel holds until the abort arrives.
  maxAhead: 16 * MiB,
}));

async function pair(ws: WebSocketTransport, path = "/p2p") {
  const accepted = Promise.withResolvers<Duplex>();
  const listener = await ws.listen(`ws://127.0.0.1:0${path}`, { onConnection: accepted.resolve });
  const client = await ws.dial(listener.addr);
  const server = await accepted.promise;
  return { listener, client, server };
}

Deno.test("websocket: the listener answers 404 off its path and 426 to plain requests", async () => {
  const ws = new WebSocketTransport();
  const listener = await ws.listen("ws://127.0.0.1:0/p2p", { onConnection: (conn) => conn.abort() });
  const http = listener.addr.replace("ws://", "http://");
  const other = await fetch(http.replace("/p2p", "/other"));
  equal(other.status, 404);
  await other.body?.cancel();
  const plain = await fetch(http);
  equal(plain.status, 426);
  await plain.body?.cancel();
  await rejects(ws.dial(listener.addr.replace("/p2p", "/other")), (error) => {
    ok(error instanceof DialError);
    ok(/404/.test(error.message), error.message);
    return true;
  });
  await listener.close();
});

Deno.test("websocket: a text message aborts the connection with a ProtocolError", async () => {
  const accepted = Promise.withResolvers<Duplex>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => acceptWebSocket(request, { onConnection: accepted.resolve }),
  );
  const raw = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  await new Promise((resolve) => raw.onopen = resolve);
  const closed = new Promise<CloseEvent>((resolve) => raw.onclose = resolve);
  const conn = await accepted.promise;
  raw.send("not bytes");
  await rejects(conn.readable.getReader().read(), (error) => {
    ok(error instanceof ProtocolError);
    ok(/sent a text message/.test(error.message), error.message);
    return true;
  });
  equal((await closed).code, 4001);
  await conn.closed;
  await server.shutdown();
});

Deno.test("websocket: a peer that sends past readBufferLimit is cut off", async () => {
  const ws = new WebSocketTransport({ readBufferLimit: 256 * 1024, readHighWaterMark: 64 * 1024 });
  const { listener, client, server } = await pair(ws);
  const writer = client.writable.getWriter();
  await rejects(
    (async () => {
      for (let i = 0; i < 1000; i++) await writer.write(new Uint8Array(64 * 1024));
    })(),
    // The close frame (4002) may be lost in the reset of a connection still full of data.
    (error) => error instanceof TransportError && /faster than it read|lost/.test(error.message),
  );
  const reader = server.readable.getReader();
  await rejects(
    (async () => {
      while (!(await reader.read()).done);
    })(),
    (error) => error instanceof ProtocolError && /more than readBufferLimit 262144/.test(error.message),
  );
  await Promise.all([client.closed, server.closed]);
  await listener.close();
});

Deno.test("websocket: acceptWebSocket serves the transport from a Hono route", async () => {
  const app = new Hono();
  const served: Promise<void>[] = [];
  app.get(
    "/v1/p2p",
    (c) =>
      acceptWebSocket(c.req.raw, {
        onConnection: (conn) => void served.push(conn.readable.pipeTo(conn.writable).catch(() => {})),
      }),
  );
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const conn = await new WebSocketTransport().dial(`ws://127.0.0.1:${server.addr.port}/v1/p2p`);
  const writer = conn.writable.getWriter();
  await writer.write(new TextEncoder().encode("over hono"));
  eql(new TextDecoder().decode((await conn.readable.getReader().read()).value), "over hono");
  await writer.close();
  await conn.closed;
  await Promise.all(served);
  await server.shutdown();
});

Deno.test("websocket: a closed listener frees its port once its last connection closed", async () => {
  const ws = new WebSocketTransport();
  const { listener, client, server } = await pair(ws);
  await listener.close();
  await client.close();
  await Promise.all([client.closed, server.closed]);
  await listener.close(); // waits for the HTTP server to be down
  const again = await ws.listen(listener.addr, { onConnection: (conn) => conn.abort() });
  equal(again.addr, listener.addr);
  await again.close();
});

Deno.test("websocket: listen and dial refuse tcp addresses, wss without tls, bad options", async () => {
  const ws = new WebSocketTransport();
  await rejects(ws.dial("tcp://127.0.0.1:1"), RangeError);
  await rejects(ws.listen("tcp://127.0.0.1:0", { onConnection: () => {} }), RangeError);
  await rejects(ws.listen("wss://127.0.0.1:0/", { onConnection: () => {} }), /needs the transport's options.tls/);
  await rejects(ws.listen("ws://127.0.0.1:0/", {} as ListenOptions), TypeError);
  throws(() => acceptWebSocket(new Request("http://x/"), {} as AcceptWebSocketOptions), TypeError);
});

/** A self-signed certificate for 127.0.0.1, made by openssl; null when openssl is missing. */
async function selfSigned(): Promise<{ cert: string; key: string } | null> {
  const dir = await Deno.makeTempDir();
  try {
    const { success } = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE", // rustls refuses a CA certificate as the server's own
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!success) return null;
    return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
  } catch {
    return null;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("websocket: wss dials over TLS with a custom CA and refuses an unknown certificate", async (t) => {
  const tls = await selfSigned();
  if (!tls) return void await t.step({ name: "openssl is not available", ignore: true, fn: () => {} });
  using client = Deno.createHttpClient({ caCerts: [tls.cert] });
  const ws = new WebSocketTransport({ tls, client });
  const served: Promise<void>[] = [];
  const listener = await ws.listen("wss://127.0.0.1:0/p2p", {
    onConnection: (conn) => void served.push(conn.readable.pipeTo(conn.writable).catch(() => {})),
  });
  ok(listener.addr.startsWith("wss://127.0.0.1:"), listener.addr);
  const conn = await ws.dial(listener.addr);
  const writer = conn.writable.getWriter();
  await writer.write(new Uint8Array([1, 2, 3]));
  eql((await conn.readable.getReader().read()).value, new Uint8Array([1, 2, 3]));
  await writer.close();
  await conn.closed;
  await Promise.all(served);
  await rejects(new WebSocketTransport().dial(listener.addr), DialError);
  await listener.close();
});

Deno.test("websocket: a dial stuck in the upgrade gives up when its signal aborts", async () => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  const reason = new Error("too slow");
  const controller = new AbortController();
  setTimeout(() => controller.abort(reason), 30);
  await rejects(
    new WebSocketTransport().dial(`ws://127.0.0.1:${silent.addr.port}/p2p`, { signal: controller.signal }),
    (error) => error === reason,
  );
  silent.close();
  await accepting.catch(() => {});
  for (const conn of held) conn.close();
});
