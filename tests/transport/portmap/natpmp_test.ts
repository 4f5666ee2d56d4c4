import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  decodeNatPmpRequest,
  decodeNatPmpResponse,
  encodeNatPmpRequest,
  encodeNatPmpResponse,
  MalformedPortMapMessageError,
  NatPmpClient,
  natPmpEpochValid,
  type NatPmpRequest,
  type NatPmpResponse,
  natPmpResultName,
  PortMappingError,
} from "../../../transport/mod.ts";
import vectors from "../../../spec/vectors/portmap/rfc6886_natpmp.json" with { type: "json" };
import { fromHex, loopbackSocket, toHex } from "./_helpers.ts";

for (const v of vectors.requests) {
  Deno.test(`nat-pmp: encodeNatPmpRequest() and decodeNatPmpRequest() match RFC 6886 vector "${v.name}"`, () => {
    const request = v.request as NatPmpRequest;
    equal(toHex(encodeNatPmpRequest(request)), v.hex);
    deepEqual(decodeNatPmpRequest(fromHex(v.hex)), request);
  });
}

for (const v of vectors.responses) {
  Deno.test(`nat-pmp: decodeNatPmpResponse() and encodeNatPmpResponse() match RFC 6886 vector "${v.name}"`, () => {
    const response = v.response as NatPmpResponse;
    deepEqual(decodeNatPmpResponse(fromHex(v.hex)), response);
    equal(toHex(encodeNatPmpResponse(response)), v.hex);
  });
}

for (const v of vectors.malformedResponses) {
  Deno.test(`nat-pmp: decodeNatPmpResponse() rejects ${v.name}`, () => {
    throws(() => decodeNatPmpResponse(fromHex(v.hex)), (e: Error) => {
      ok(e instanceof MalformedPortMapMessageError, `${e.name}: ${e.message}`);
      ok(e.message.startsWith("Cannot decode NAT-PMP response: "), e.message);
      ok(e.message.includes(v.error), `"${e.message}" lacks "${v.error}"`);
      return true;
    });
  });
}

Deno.test("nat-pmp: decodeNatPmpResponse() throws only MalformedPortMapMessageError on random bytes", () => {
  const anyBytes = fc.uint8Array({ maxLength: 40 });
  const headed = fc.tuple(fc.constantFrom(128, 129, 130, 131), fc.uint8Array({ maxLength: 20 }))
    .map(([op, rest]) => new Uint8Array([0, op, ...rest]));
  fc.assert(
    fc.property(fc.oneof(anyBytes, headed), (bytes) => {
      try {
        const r = decodeNatPmpResponse(bytes);
        equal(r.op, bytes[1] - 128);
      } catch (e) {
        if (!(e instanceof MalformedPortMapMessageError)) throw e;
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("nat-pmp: decodeNatPmpRequest() throws only MalformedPortMapMessageError on random bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), (bytes) => {
      try {
        decodeNatPmpRequest(bytes);
      } catch (e) {
        if (!(e instanceof MalformedPortMapMessageError)) throw e;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("nat-pmp: encodeNatPmpRequest() names the bad parameter", () => {
  throws(
    () => encodeNatPmpRequest({ op: 1, internalPort: 0, suggestedExternalPort: 1, lifetimeSeconds: 1 }),
    /internalPort must be an integer 1-65535, got 0/,
  );
  throws(
    () => encodeNatPmpRequest({ op: 2, internalPort: 1, suggestedExternalPort: 1, lifetimeSeconds: 2 ** 32 }),
    /lifetimeSeconds/,
  );
  throws(() => encodeNatPmpRequest({ op: 3 } as unknown as NatPmpRequest), /op must be 0, 1 or 2/);
});

Deno.test("nat-pmp: result codes have the names of RFC 6886 section 3.5", () => {
  equal(natPmpResultName(0), "SUCCESS");
  equal(natPmpResultName(2), "NOT_AUTHORIZED");
  equal(natPmpResultName(4), "OUT_OF_RESOURCES");
  equal(natPmpResultName(5), "UNSUPPORTED_OPCODE");
  equal(natPmpResultName(6), "UNKNOWN_6");
});

Deno.test("nat-pmp: natPmpEpochValid() follows RFC 6886 section 3.6 (7/8 of the elapsed time, 2 s slack)", () => {
  const prev = { epoch: 1000, atMs: 0 };
  ok(natPmpEpochValid(prev, { epoch: 1100, atMs: 100_000 }));
  ok(natPmpEpochValid(prev, { epoch: 1086, atMs: 100_000 }), "87.5 s of 100 s, less 2 s slack");
  ok(!natPmpEpochValid(prev, { epoch: 1080, atMs: 100_000 }), "too slow: restarted and counting again");
  ok(!natPmpEpochValid(prev, { epoch: 5, atMs: 10_000 }), "went back");
});

Deno.test("nat-pmp: NatPmpClient retransmits from 250 ms and gives up with TIMEOUT within its budget", async () => {
  using gw = loopbackSocket();
  const arrivals: number[] = [];
  const start = Date.now();
  const listen = (async () => {
    try {
      while (true) {
        await gw.conn.receive();
        arrivals.push(Date.now() - start);
      }
    } catch { /* closed */ }
  })();
  const pmp = new NatPmpClient({ gateway: "127.0.0.1", localAddress: "127.0.0.1", port: gw.port, timeoutMs: 1000 });
  await rejects(pmp.externalAddress(), (e: Error) => {
    ok(e instanceof PortMappingError);
    equal(e.reason, "TIMEOUT");
    equal(e.method, "nat-pmp");
    ok(e.message.includes("public address request"), e.message);
    return true;
  });
  ok(Date.now() - start < 1600);
  gw[Symbol.dispose]();
  await listen;
  // Sent at 0, 250, 750 ms (RFC 6886 section 3.1), the next due at 1750 ms is past the 1 s budget; a loaded machine
  // may push the third past it too.
  ok(arrivals.length === 2 || arrivals.length === 3, `arrivals at ${arrivals}`);
  ok(arrivals[1] - arrivals[0] >= 200, `arrivals at ${arrivals}`);
  if (arrivals.length === 3) ok(arrivals[2] - arrivals[1] >= 450, `arrivals at ${arrivals}`);
});

Deno.test("nat-pmp: NatPmpClient turns a result code into a named PortMappingError; answers for another port are not its", async () => {
  using gw = loopbackSocket();
  const serve = (async () => {
    const [data, from] = await gw.conn.receive();
    const req = decodeNatPmpRequest(data);
    if (req.op === 0) throw new Error("expected a mapping request");
    await gw.conn.send(
      encodeNatPmpResponse({
        op: req.op,
        resultCode: 0,
        epoch: 1,
        internalPort: 1,
        externalPort: 1,
        lifetimeSeconds: 9,
      }),
      from,
    );
    await gw.conn.send(encodeNatPmpResponse({ op: req.op, resultCode: 4, epoch: 1 }), from);
  })();
  const pmp = new NatPmpClient({ gateway: "127.0.0.1", localAddress: "127.0.0.1", port: gw.port, timeoutMs: 1000 });
  await rejects(pmp.map({ protocol: "udp", internalPort: 4000, lifetimeSeconds: 60 }), (e: Error) => {
    ok(e instanceof PortMappingError);
    equal(e.reason, "OUT_OF_RESOURCES");
    equal(e.code, 4);
    return true;
  });
  await serve;
});
