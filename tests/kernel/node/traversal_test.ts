import { deepEqual, throws } from "node:assert/strict";
import { parseTurnUrl } from "../../../kernel/node/traversal.ts";

Deno.test("parseTurnUrl() reads turn://USER:PASSWORD@IP:PORT and the transport", () => {
  deepEqual(parseTurnUrl("turn://test:test123@203.0.113.10:3478"), {
    server: "203.0.113.10:3478",
    username: "test",
    password: "test123",
    transport: "udp",
  });
  deepEqual(parseTurnUrl("turn://a%40b:p%3Aw@[2001:db8::1]:3478?transport=tcp"), {
    server: "[2001:db8::1]:3478",
    username: "a@b",
    password: "p:w",
    transport: "tcp",
  });
});

Deno.test("parseTurnUrl() refuses what is not a TURN server address", () => {
  for (
    const bad of [
      "stun://test:x@203.0.113.10:3478",
      "turn://203.0.113.10:3478",
      "turn://test:x@203.0.113.10",
      "turn://test:x@203.0.113.10:3478?transport=sctp",
      "not a url",
    ]
  ) {
    throws(() => parseTurnUrl(bad), SyntaxError, bad);
  }
});
