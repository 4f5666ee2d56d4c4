import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import binaryen from "binaryen";
import {
  createSandbox,
  FUEL_EXPORT,
  instrumentModule,
  SandboxLimitError,
  SandboxLinkError,
} from "../../../kernel/runtime/wasm_sandbox.ts";

/** A module's binary from WAT, through binaryen's parser. */
function wat(text: string): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

const SPIN = wat(`(module (func (export "spin") (loop $l (br $l))))`);

const SUM = wat(`
(module
  (func $sum (export "sum") (param $n i32) (result i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $acc))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2))))))))`);

// Grows one page at a time until memory.grow fails, then returns the number of pages (or aborts, as an allocator would).
const GROW = wat(`
(module
  (memory 1 4)
  (func (export "grow_all") (result i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (memory.size))
  (func (export "grow_or_abort")
    (loop $more
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
      (br $more)))
  (func (export "grow_forever")
    (loop $more (drop (memory.grow (i32.const 1))) (br $more))))`);

const LOGGER = wat(`
(module
  (import "nz" "log" (func $log (param i32 i32)))
  (memory 1 1)
  (data (i32.const 8) "hello from wasm")
  (func (export "hello") (call $log (i32.const 8) (i32.const 15))))`);

Deno.test("an infinite loop stops with out-of-fuel after exactly its fuel", async () => {
  const sandbox = await createSandbox(SPIN, { fuel: 10_000 });
  throws(() => sandbox.call("spin"), (e: unknown) => {
    ok(e instanceof SandboxLimitError);
    equal(e.limit, "fuel");
    equal(e.message, "out of fuel after 10000 units");
    equal(e.fuelUsed, 10_000);
    ok(e.cause instanceof WebAssembly.RuntimeError);
    return true;
  });
  // The sandbox can be called again, with its fuel refilled.
  throws(() => sandbox.call("spin"), SandboxLimitError);
});

Deno.test("sum and fib return the right result and use the same fuel every time", async () => {
  const sandbox = await createSandbox(SUM, { fuel: 1_000_000 });
  const first = sandbox.call("sum", 100);
  equal(first.result, 5050);
  eql(sandbox.call("sum", 100), first);
  // The cost is linear in the iterations: one loop header per iteration, plus the entry.
  const perIteration = sandbox.call("sum", 101).fuelUsed - first.fuelUsed;
  ok(perIteration > 0);
  equal(sandbox.call("sum", 0).fuelUsed + 100 * perIteration, first.fuelUsed);
  equal(first.memoryPages, 0);

  const fib = sandbox.call("fib", 20);
  equal(fib.result, 6765);
  eql(sandbox.call("fib", 20), fib);
  // A fresh instance of the same module spends the same fuel.
  const again = await createSandbox(SUM, { fuel: 1_000_000 });
  eql(again.call("fib", 20), fib);
  // The figures of binaryen 132's IR (costs count its expressions): 13 units per iteration of sum's loop.
  equal(perIteration, 13);
  equal(first.fuelUsed, 1318);
  equal(fib.fuelUsed, 306_474);

  // With less fuel than fib(20) needs, it stops.
  const short = await createSandbox(SUM, { fuel: fib.fuelUsed - 1 });
  throws(() => short.call("fib", 20), { name: "SandboxLimitError", limit: "fuel" });
  equal((await createSandbox(SUM, { fuel: fib.fuelUsed })).call("fib", 20).result, 6765);
});

Deno.test("memory.grow stops at the page limit, and the pages are reported", async () => {
  const sandbox = await createSandbox(GROW, { fuel: 100_000, memoryPages: 4 });
  const grown = sandbox.call("grow_all");
  equal(grown.result, 4);
  equal(grown.memoryPages, 4);

  const aborting = await createSandbox(GROW, { fuel: 100_000, memoryPages: 4 });
  throws(() => aborting.call("grow_or_abort"), (e: unknown) => {
    ok(e instanceof SandboxLimitError);
    equal(e.limit, "memory");
    equal(e.message, "memory limit of 4 pages reached");
    equal(e.memoryPages, 4);
    return true;
  });

  // Allocating without end and ignoring the failure: memory stops at the limit, fuel stops the loop.
  const forever = await createSandbox(GROW, { fuel: 100_000, memoryPages: 4 });
  throws(() => forever.call("grow_forever"), { limit: "fuel", memoryPages: 4 });
});

Deno.test("a memory without a maximum or over the limit is refused", async () => {
  await rejects(() => createSandbox(GROW, { fuel: 1000, memoryPages: 3 }), {
    name: "SandboxLinkError",
    message: "memory of 1..4 pages is over the limit of 3 pages",
  });
  await rejects(() => createSandbox(wat(`(module (memory 1))`), { fuel: 1000 }), {
    name: "SandboxLinkError",
    message: "memory has no maximum: declare one of at most 16 pages",
  });
  await rejects(() => createSandbox(wat(`(module (import "env" "mem" (memory 1 1)))`), { fuel: 1000 }), {
    message: 'import "env.mem": the sandbox gives no memory',
  });
});

Deno.test("a module importing an ungranted host function is refused at link time, naming it", async () => {
  await rejects(() => createSandbox(LOGGER, { fuel: 1000 }), (e: unknown) => {
    ok(e instanceof SandboxLinkError);
    equal(e.message, 'import "nz.log" needs the capability "nz:log", not granted');
    return true;
  });
  await rejects(() => createSandbox(LOGGER, { fuel: 1000, capabilities: ["nz:time"] }), SandboxLinkError);
  const other = wat(`(module (import "env" "system" (func (param i32))))`);
  await rejects(() => createSandbox(other, { fuel: 1000, capabilities: ["nz:log"] }), {
    message: 'import "env.system" is not a host function of the sandbox',
  });
  await rejects(() => createSandbox(LOGGER, { fuel: 1000, capabilities: ["nz:everything"] }), RangeError);
});

Deno.test("granted host functions work: nz:log collects a string, nz:kv reads and writes the namespace", async () => {
  const lines: string[] = [];
  const sandbox = await createSandbox(LOGGER, {
    fuel: 1000,
    capabilities: ["nz:log"],
    host: { log: (s) => lines.push(s) },
  });
  const { result, fuelUsed } = sandbox.call("hello");
  equal(result, undefined);
  ok(fuelUsed > 0);
  eql(lines, ["hello from wasm"]);
  eql(sandbox.exports, ["hello"]);

  const kvModule = wat(`
(module
  (import "nz" "kv_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "nz" "kv_set" (func $set (param i32 i32 i32 i32)))
  (import "nz" "now" (func $now (result f64)))
  (memory 1 1)
  (data (i32.const 0) "count")
  (func (export "bump") (result i32)
    (if (i32.eq (call $get (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 1)) (i32.const -1))
      (then (i32.store8 (i32.const 16) (i32.const 0))))
    (i32.store8 (i32.const 16) (i32.add (i32.load8_u (i32.const 16)) (i32.const 1)))
    (call $set (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 1))
    (i32.load8_u (i32.const 16)))
  (func (export "time") (result f64) (call $now)))`);
  const kv = new Map<string, Uint8Array>();
  const counter = await createSandbox(kvModule, {
    fuel: 1000,
    capabilities: ["nz:kv", "nz:time"],
    host: { kv, now: () => 1234.5 },
  });
  equal(counter.call("bump").result, 1);
  equal(counter.call("bump").result, 2);
  eql(kv.get("count"), new Uint8Array([2]));
  equal(counter.call("time").result, 1234.5);
});

Deno.test("instrumentModule() adds the fuel export and refuses unsupported features and reserved names", async () => {
  const { bytes, meteringPoints } = await instrumentModule(SUM);
  equal(meteringPoints, 3); // two function entries, one loop
  const exports = WebAssembly.Module.exports(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>));
  ok(exports.some((e) => e.name === FUEL_EXPORT && e.kind === "global"));
  eql(await instrumentModule(SUM), { bytes, imports: [], meteringPoints }); // deterministic
  await rejects(() => instrumentModule(new Uint8Array([0, 1, 2])), { message: "not a valid WebAssembly module" });
  const simd = wat(`(module (func (export "f") (result v128) (v128.const i32x4 0 0 0 0)))`);
  await rejects(() => instrumentModule(simd), SandboxLinkError);
  const reserved = wat(`(module (func (export "__nz_fuel")))`);
  await rejects(() => instrumentModule(reserved), {
    message: 'export "__nz_fuel": the prefix __nz_ is the sandbox\'s',
  });
});
