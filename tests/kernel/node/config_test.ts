import { deepStrictEqual as eql, equal, throws } from "node:assert/strict";
import { parseHostPort, resolveDataDir } from "../../../kernel/node/config.ts";

Deno.test("parseHostPort() reads IPv4, names and bracketed IPv6", () => {
  eql(parseHostPort("127.0.0.1:7474"), { hostname: "127.0.0.1", port: 7474 });
  eql(parseHostPort("localhost:0"), { hostname: "localhost", port: 0 });
  eql(parseHostPort("[::1]:80"), { hostname: "::1", port: 80 });
});

Deno.test("parseHostPort() refuses what is not HOST:PORT", () => {
  for (const bad of ["127.0.0.1", ":80", "host:99999", "host:-1", "::1:80", "a b:1"]) {
    throws(() => parseHostPort(bad), SyntaxError, bad);
  }
});

Deno.test("resolveDataDir() prefers the flag, then NZCORE_HOME, then XDG_DATA_HOME, then HOME", () => {
  const saved = ["NZCORE_HOME", "XDG_DATA_HOME", "HOME"].map((k) => [k, Deno.env.get(k)] as const);
  try {
    Deno.env.set("NZCORE_HOME", "/srv/nz");
    Deno.env.set("XDG_DATA_HOME", "/xdg");
    Deno.env.set("HOME", "/home/u");
    equal(resolveDataDir("/flag"), "/flag");
    equal(resolveDataDir(), "/srv/nz");
    Deno.env.delete("NZCORE_HOME");
    equal(resolveDataDir(), "/xdg/nzcore");
    Deno.env.delete("XDG_DATA_HOME");
    equal(resolveDataDir(), "/home/u/.local/share/nzcore");
    Deno.env.delete("HOME");
    throws(() => resolveDataDir(), /Cannot choose a data directory/);
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
});
