import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { formatAddress, parseAddress, schemeOf, selectTransport } from "../../transport/address.ts";
import type { Transport } from "../../transport/types.ts";

Deno.test("parseAddress() reads tcp addresses with IPv4, host name and IPv6 hosts", () => {
  eql(parseAddress("tcp://127.0.0.1:4001"), { scheme: "tcp", host: "127.0.0.1", port: 4001, path: "" });
  eql(parseAddress("TCP://Node-1.Example.org:0"), { scheme: "tcp", host: "node-1.example.org", port: 0, path: "" });
  eql(parseAddress("tcp://[::1]:65535"), { scheme: "tcp", host: "::1", port: 65535, path: "" });
  eql(parseAddress("tcp://[0:0:0:0:0:0:0:1]:1"), { scheme: "tcp", host: "::1", port: 1, path: "" });
  eql(parseAddress("tcp://[FE80::A]:1").host, "fe80::a");
});

Deno.test("parseAddress() reads ws and wss addresses, with default ports and path", () => {
  eql(parseAddress("ws://example.org"), { scheme: "ws", host: "example.org", port: 80, path: "/" });
  eql(parseAddress("wss://example.org/"), { scheme: "wss", host: "example.org", port: 443, path: "/" });
  eql(parseAddress("ws://[::1]:8080/p2p/v1?x=1"), { scheme: "ws", host: "::1", port: 8080, path: "/p2p/v1?x=1" });
  eql(parseAddress("wss://10.0.0.1:4443/p2p").port, 4443);
});

Deno.test("parseAddress() names what is wrong with a malformed address", () => {
  const cases: [unknown, ErrorConstructor, RegExp][] = [
    [42, TypeError, /expected a string, got number/],
    [null, TypeError, /got null/],
    ["127.0.0.1:4001", SyntaxError, /expected SCHEME:\/\/HOST:PORT/],
    ["quic://127.0.0.1:4001", RangeError, /unsupported scheme "quic"/],
    ["tcp://127.0.0.1", SyntaxError, /the port is missing/],
    ["tcp://127.0.0.1:", SyntaxError, /the port "" is not a number/],
    ["tcp://127.0.0.1:http", SyntaxError, /the port "http" is not a number/],
    ["tcp://127.0.0.1:65536", RangeError, /the port 65536 is above 65535/],
    ["tcp://127.0.0.1:-1", SyntaxError, /is not a number/],
    ["tcp://::1:4001", SyntaxError, /IPv6 host must be in brackets/],
    ["tcp://[::g]:4001", SyntaxError, /"\[::g\]" is not a valid IPv6 address/],
    ["tcp://[1:2:3:4:5:6:7:8:9]:4001", SyntaxError, /not a valid IPv6 address/],
    ["tcp://[::1:4001", SyntaxError, /not a valid IPv6 address/],
    ["tcp://:4001", SyntaxError, /the host is empty/],
    ["tcp://exa mple:4001", SyntaxError, /"exa mple" is not a valid host name/],
    ["tcp://-bad.example:4001", SyntaxError, /not a valid host name/],
    ["tcp://256.1.1.1:4001", SyntaxError, /"256.1.1.1" is not a valid IPv4 address/],
    ["tcp://1.2.3:4001", SyntaxError, /not a valid IPv4 address/],
    ["tcp://user@host:4001", SyntaxError, /user information/],
    ["tcp://host:4001/path", SyntaxError, /a tcp address takes no path/],
    ["tcp://host:4001?x", SyntaxError, /unexpected "\?" or "#"/],
    ["ws://host:80/a b", SyntaxError, /the path has a space/],
    ["ws://host:80/a#frag", SyntaxError, /the path has a space, "#"/],
  ];
  for (const [addr, type, message] of cases) {
    throws(() => parseAddress(addr as string), (error: Error) => {
      ok(error instanceof type, `${addr}: expected ${type.name}, got ${error.name}: ${error.message}`);
      ok(message.test(error.message), `${addr}: ${error.message}`);
      ok(error.message.startsWith("Cannot parse address"), error.message);
      return true;
    });
  }
});

Deno.test("parseAddress() quotes a long address only in part", () => {
  throws(() => parseAddress(`tcp://${"a".repeat(5000)}`), (error: Error) => error.message.length < 300);
});

const hostArb = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.domain().filter((d) => !/^[0-9.]+$/.test(d)),
);
const addressArb = fc.oneof(
  fc.record({ scheme: fc.constant("tcp" as const), host: hostArb, port: fc.nat(65535), path: fc.constant("") }),
  fc.record({
    scheme: fc.constantFrom("ws" as const, "wss" as const),
    host: hostArb,
    port: fc.nat(65535),
    path: fc.webPath().map((p) => p.startsWith("/") ? p : `/${p}`),
  }),
);

Deno.test("formatAddress() and parseAddress() round-trip any valid address", () => {
  fc.assert(
    fc.property(addressArb, (address) => {
      const text = formatAddress(address);
      const parsed = parseAddress(text);
      equal(formatAddress(parsed), text);
      equal(parsed.port, address.port);
      equal(parsed.scheme, address.scheme);
      if (address.scheme !== "tcp") equal(parsed.path, address.path);
    }),
    { numRuns: 500 },
  );
});

Deno.test("formatAddress() brackets IPv6 hosts and rejects bad parts", () => {
  equal(formatAddress({ scheme: "tcp", host: "::1", port: 4001, path: "" }), "tcp://[::1]:4001");
  equal(formatAddress({ scheme: "ws", host: "Example.org", port: 80, path: "" }), "ws://example.org:80/");
  throws(() => formatAddress({ scheme: "tcp", host: "::1", port: 70000, path: "" }), RangeError);
  throws(() => formatAddress({ scheme: "tcp", host: "h", port: 1.5, path: "" }), RangeError);
  throws(() => formatAddress({ scheme: "tcp", host: 5 as unknown as string, port: 1, path: "" }), TypeError);
  throws(() => formatAddress({ scheme: "tcp", host: "a b", port: 1, path: "" }), SyntaxError);
  throws(() => formatAddress({ scheme: "quic" as "tcp", host: "h", port: 1, path: "" }), RangeError);
});

Deno.test("schemeOf() returns the lowercase scheme of any address", () => {
  equal(schemeOf("memory://x"), "memory");
  equal(schemeOf("WSS://x"), "wss");
  throws(() => schemeOf("no-scheme"), SyntaxError);
  throws(() => schemeOf(undefined as unknown as string), TypeError);
});

function fake(...schemes: string[]): Transport {
  return { schemes, dial: () => Promise.reject(new Error()), listen: () => Promise.reject(new Error()) };
}

Deno.test("selectTransport() picks the transport of the address's scheme", () => {
  const tcp = fake("tcp");
  const ws = fake("ws", "wss");
  equal(selectTransport("tcp://h:1", [ws, tcp]), tcp);
  equal(selectTransport("WSS://h/p", [ws, tcp]), ws);
});

Deno.test("selectTransport() rejects an unknown scheme, listing the known ones", () => {
  throws(
    () => selectTransport("udp://h:1", [fake("tcp"), fake("ws", "wss")]),
    (error: Error) => error instanceof RangeError && /scheme "udp" is not one of tcp, ws, wss/.test(error.message),
  );
  throws(() => selectTransport("tcp://h:1", []), /no transports/);
  throws(() => selectTransport("nonsense", [fake("tcp")]), SyntaxError);
});
