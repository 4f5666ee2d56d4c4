import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  decodePcpRequest,
  decodePcpResponse,
  encodePcpRequest,
  encodePcpResponse,
  MalformedPortMapMessageError,
  PcpClient,
  pcpEpochValid,
  type PcpMapData,
  type PcpOption,
  type PcpRequest,
  type PcpResponse,
  pcpResultName,
  PortMappingError,
} from "../../../transport/mod.ts";
import { retransmitDelays } from "../../../transport/portmap/_exchange.ts";
import vectors from "../../../spec/vectors/portmap/rfc6887_pcp.json" with { type: "json" };
import { fromHex, loopbackSocket, toHex } from "./_helpers.ts";

interface JsonMap {
  nonce: string;
  protocol: number;
  internalPort: number;
  externalPort: number;
  externalAddress: string;
}

function mapOf(m: JsonMap | undefined): { map?: PcpMapData } {
  return m ? { map: { ...m, nonce: fromHex(m.nonce) } } : {};
}

function optionsOf(o: Array<{ code: number; data: string }>): PcpOption[] {
  return o.map(({ code, data }) => ({ code, data: fromHex(data) }));
}

for (const v of vectors.requests) {
  Deno.test(`pcp: encodePcpRequest() and decodePcpRequest() match RFC 6887 vector "${v.name}"`, () => {
    const { map, options, ...header } = v.request;
    const request: PcpRequest = { ...header, ...mapOf(map), options: optionsOf(options) };
    equal(toHex(encodePcpRequest(request)), v.hex);
    deepEqual(decodePcpRequest(fromHex(v.hex)), request);
  });
}

for (const v of vectors.responses) {
  Deno.test(`pcp: decodePcpResponse() and encodePcpResponse() match RFC 6887 vector "${v.name}"`, () => {
    const { map, options, ...header } = v.response as typeof v.response & { map?: JsonMap };
    const response: PcpResponse = {
      opcode: header.opcode,
      resultCode: header.resultCode,
      lifetimeSeconds: header.lifetimeSeconds,
      epoch: header.epoch,
      ...mapOf(map),
      options: optionsOf(options),
    };
    deepEqual(decodePcpResponse(fromHex(v.hex)), response);
    equal(toHex(encodePcpResponse(response)), v.hex);
  });
}

for (const v of vectors.malformedResponses) {
  Deno.test(`pcp: decodePcpResponse() rejects ${v.name}`, () => {
    throws(() => decodePcpResponse(fromHex(v.hex)), (e: Error) => {
      ok(e instanceof MalformedPortMapMessageError, `${e.name}: ${e.message}`);
      ok(e.message.startsWith("Cannot decode PCP response: "), e.message);
      ok(e.message.includes(v.error), `"${e.message}" lacks "${v.error}"`);
      return true;
    });
  });
}

Deno.test("pcp: decodePcpResponse() rejects a message over 1100 bytes", () => {
  const big = new Uint8Array(1104);
  big.set([2, 0x80]);
  throws(() => decodePcpResponse(big), /length is 1104, expected <= 1100/);
});

Deno.test("pcp: decodePcpResponse() throws only MalformedPortMapMessageError on random bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1200 }), (bytes) => {
      try {
        decodePcpResponse(bytes);
      } catch (e) {
        if (!(e instanceof MalformedPortMapMessageError)) throw e;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("pcp: decodePcpResponse() throws only MalformedPortMapMessageError on a valid header and random rest", () => {
  const framed = fc.tuple(fc.constantFrom(0x80, 0x81, 0x82, 0x83), fc.integer({ min: 0, max: 269 }), fc.integer())
    .chain(([op, words, seed]) =>
      fc.uint8Array({ minLength: words * 4, maxLength: words * 4 }).map((rest) => {
        const bytes = new Uint8Array(24 + rest.length);
        bytes.set([2, op, 0, seed & 0xff]);
        bytes.set(rest, 24);
        return bytes;
      })
    );
  fc.assert(
    fc.property(framed, (bytes) => {
      try {
        const r = decodePcpResponse(bytes);
        ok(r.opcode === (bytes[1] & 0x7f));
      } catch (e) {
        if (!(e instanceof MalformedPortMapMessageError)) throw e;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("pcp: decodePcpResponse(encodePcpResponse(r)) is r for any MAP response", () => {
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join("."));
  const response = fc.record({
    opcode: fc.constant(1),
    resultCode: fc.nat(255),
    lifetimeSeconds: fc.nat(0xffffffff),
    epoch: fc.nat(0xffffffff),
    map: fc.record({
      nonce: fc.uint8Array({ minLength: 12, maxLength: 12 }),
      protocol: fc.nat(255),
      internalPort: fc.nat(65535),
      externalPort: fc.nat(65535),
      externalAddress: ipv4,
    }),
    options: fc.array(fc.record({ code: fc.nat(255), data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 4 }),
  });
  fc.assert(fc.property(response, (r) => deepEqual(decodePcpResponse(encodePcpResponse(r)), r)));
});

Deno.test("pcp: encodePcpRequest() names the bad parameter", () => {
  const map = { nonce: new Uint8Array(12), protocol: 17, internalPort: 1, externalPort: 0, externalAddress: "0.0.0.0" };
  const base = { opcode: 1, lifetimeSeconds: 60, clientAddress: "10.0.1.10", map };
  throws(() => encodePcpRequest({ ...base, lifetimeSeconds: -1 }), RangeError);
  throws(() => encodePcpRequest({ ...base, clientAddress: "::1" }), /clientAddress is not an IPv4 address/);
  throws(() => encodePcpRequest({ ...base, map: { ...map, nonce: new Uint8Array(11) } }), /map.nonce must be 12 bytes/);
  throws(() => encodePcpRequest({ ...base, map: { ...map, internalPort: 70000 } }), /map.internalPort/);
});

Deno.test("pcp: result codes have the names of RFC 6887 section 7.4", () => {
  equal(pcpResultName(0), "SUCCESS");
  equal(pcpResultName(2), "NOT_AUTHORIZED");
  equal(pcpResultName(8), "NO_RESOURCES");
  equal(pcpResultName(13), "EXCESSIVE_REMOTE_PEERS");
  equal(pcpResultName(99), "UNKNOWN_99");
});

Deno.test("pcp: pcpEpochValid() follows RFC 6887 section 8.5", () => {
  const prev = { epoch: 1000, atMs: 0 };
  ok(pcpEpochValid(prev, { epoch: 1100, atMs: 100_000 }), "in step");
  ok(pcpEpochValid(prev, { epoch: 999, atMs: 1_000 }), "1 s back is within the 2 s slack");
  ok(!pcpEpochValid(prev, { epoch: 10, atMs: 100_000 }), "went back: the server restarted");
  ok(!pcpEpochValid(prev, { epoch: 1020, atMs: 100_000 }), "server clock far slower than ours");
  ok(!pcpEpochValid(prev, { epoch: 1300, atMs: 100_000 }), "server clock far faster than ours");
  ok(pcpEpochValid(prev, { epoch: 1094, atMs: 100_000 }), "within 1/16 plus 2 s");
});

Deno.test("pcp: retransmission follows RFC 6887 section 8.1.1 (IRT 3 s, doubling, MRT cap, +-10% jitter)", () => {
  const take = (g: Iterable<number>, n: number) => [...g].slice(0, n);
  deepEqual(take(retransmitDelays(3000, 20_000, 6, 0.1, () => 0.5), 10), [3000, 6000, 12000, 20000, 20000]);
  const high = [...retransmitDelays(3000, 1_024_000, 3, 0.1, () => 1)];
  deepEqual(high.map(Math.round), [3300, 7260]);
  const low = [...retransmitDelays(3000, 1_024_000, 2, 0.1, () => 0)];
  deepEqual(low.map(Math.round), [2700]);
  deepEqual([...retransmitDelays(250, Infinity, 9, 0)], [250, 500, 1000, 2000, 4000, 8000, 16000, 32000]);
});

// Hostile and silent "gateways" on loopback: what the real miniupnpd never sends.

Deno.test("pcp: PcpClient.map() gives up with TIMEOUT within its budget when nothing answers", async () => {
  using silent = loopbackSocket();
  const port = silent.port;
  const pcp = new PcpClient({ gateway: "127.0.0.1", internalAddress: "127.0.0.1", port, timeoutMs: 400 });
  const t = Date.now();
  await rejects(pcp.map({ protocol: "udp", internalPort: 4000, lifetimeSeconds: 60 }), (e: Error) => {
    ok(e instanceof PortMappingError);
    equal(e.reason, "TIMEOUT");
    equal(e.method, "pcp");
    return true;
  });
  ok(Date.now() - t < 1500);
});

Deno.test("pcp: PcpClient ignores malformed and foreign answers and names the malformed one in its timeout", async () => {
  using gw = loopbackSocket();
  const hostile = gw.conn, port = gw.port;
  const seen: Uint8Array[] = [];
  const serve = (async () => {
    const [data, from] = await hostile.receive();
    seen.push(data);
    await hostile.send(new Uint8Array([2, 0x81, 0, 0, 1]), from); // 5 bytes
    const req = decodePcpRequest(data);
    // A well-formed answer with someone else's nonce: not ours, ignored.
    await hostile.send(
      encodePcpResponse({
        opcode: 1,
        resultCode: 0,
        lifetimeSeconds: 60,
        epoch: 1,
        map: { ...req.map!, nonce: new Uint8Array(12).fill(9), externalAddress: "203.0.113.9" },
        options: [],
      }),
      from,
    );
  })();
  const pcp = new PcpClient({ gateway: "127.0.0.1", internalAddress: "127.0.0.1", port, timeoutMs: 400 });
  await rejects(pcp.map({ protocol: "udp", internalPort: 4000, lifetimeSeconds: 60 }), (e: Error) => {
    ok(e instanceof PortMappingError);
    equal(e.reason, "TIMEOUT");
    ok(e.message.includes("ignored a malformed answer: Cannot decode PCP response: length is 5"), e.message);
    return true;
  });
  await serve;
  equal(seen.length, 1);
});

Deno.test("pcp: PcpClient turns a result code into a named PortMappingError and a NAT-PMP answer into UNSUPP_VERSION", async () => {
  using socket = loopbackSocket();
  const gw = socket.conn, port = socket.port;
  const serve = (async () => {
    let [data, from] = await gw.receive();
    const req = decodePcpRequest(data);
    await gw.send(
      encodePcpResponse({ opcode: 1, resultCode: 2, lifetimeSeconds: 30, epoch: 7, map: req.map, options: [] }),
      from,
    );
    [data, from] = await gw.receive();
    await gw.send(new Uint8Array([0, 129, 0, 1, 0, 0, 0, 7]), from); // RFC 6886: version 0, Unsupported Version
  })();
  const pcp = new PcpClient({ gateway: "127.0.0.1", internalAddress: "127.0.0.1", port, timeoutMs: 1000 });
  await rejects(pcp.map({ protocol: "tcp", internalPort: 4000, lifetimeSeconds: 60 }), (e: Error) => {
    ok(e instanceof PortMappingError);
    equal(e.reason, "NOT_AUTHORIZED");
    equal(e.code, 2);
    ok(e.message.includes("NOT_AUTHORIZED (2)"), e.message);
    return true;
  });
  await rejects(pcp.map({ protocol: "tcp", internalPort: 4000, lifetimeSeconds: 60 }), /speaks NAT-PMP only/);
  await serve;
});
