/** The request schema: strict at every level, with messages that name the field; the canonical encoding. */

import { deepStrictEqual as eql, equal, notEqual, throws } from "node:assert/strict";
import {
  canonicalRequest,
  parsePolicyRequest,
  type PolicyRequest,
  requestHash,
} from "../../../kernel/policy/request.ts";
import { req } from "./_helpers.ts";

Deno.test("parsePolicyRequest() accepts a request and defaults its context to {}", () => {
  const r = parsePolicyRequest({
    principal: { type: "agent", id: "a" },
    action: "peer.send",
    resource: { type: "peer", id: "x" },
  });
  eql(r.context, {});
});

Deno.test("parsePolicyRequest() refuses unknown fields at every level, naming them", () => {
  throws(() => parsePolicyRequest({ ...req("agent:a", "peer.send"), extra: 1 }), /Invalid policy request: .*extra/);
  throws(() => parsePolicyRequest(req("agent:a", "peer.send", "peer:x", { weather: "fine" })), /weather/);
  const bad = req("agent:a", "peer.send");
  throws(() => parsePolicyRequest({ ...bad, principal: { ...bad.principal, role: "admin" } }), /principal.*role/);
});

Deno.test("parsePolicyRequest() refuses unknown principal types, actions and resource types", () => {
  throws(
    () => parsePolicyRequest(req("user:a", "peer.send")),
    (e: Error) => e instanceof RangeError && /principal\.type/.test(e.message),
  );
  throws(() => parsePolicyRequest(req("agent:a", "peer.fly")), /action/);
  throws(() => parsePolicyRequest(req("agent:a", "peer.send", "moon:x")), /resource\.type/);
});

Deno.test("parsePolicyRequest() refuses non-integer numbers, bad peers and empty ids", () => {
  throws(() => parsePolicyRequest(req("agent:a", "peer.send", "peer:x", { time: 1.5 })), /context\.time/);
  throws(() => parsePolicyRequest(req("agent:a", "peer.send", "peer:x", { peer: "nope" })), /context\.peer/);
  throws(() => parsePolicyRequest(req("agent:", "peer.send")), /principal\.id/);
  throws(() => parsePolicyRequest("not an object"), /Invalid policy request/);
  throws(() => parsePolicyRequest(null), /Invalid policy request/);
});

Deno.test("canonicalRequest() ignores key order and sees every difference", () => {
  const a = parsePolicyRequest(req("agent:a", "peer.send", "peer:x", { time: 5, source: "api" }));
  const b: PolicyRequest = {
    context: { source: "api", time: 5 },
    resource: { id: "x", type: "peer" },
    action: "peer.send",
    principal: { id: "a", type: "agent" },
  };
  equal(canonicalRequest(a), canonicalRequest(b));
  equal(requestHash(a), requestHash(b));
  equal(
    canonicalRequest(a),
    '{"action":"peer.send","context":{"source":"api","time":5},"principal":{"id":"a","type":"agent"},"resource":{"id":"x","type":"peer"}}',
  );
  notEqual(canonicalRequest(a), canonicalRequest({ ...b, context: { source: "api", time: 6 } }));
});
