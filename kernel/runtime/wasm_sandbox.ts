/**
 * The WASM sandbox: a WebAssembly module runs with a fuel (CPU) limit, a
 * memory limit, and only the host functions its capabilities grant.
 *
 * - **Fuel.** {@linkcode instrumentModule} rewrites the module with
 *   binaryen's IR (npm `binaryen`, imported lazily: it is large): it adds a
 *   mutable i64 global, exported as `__nz_fuel`, and at every function entry
 *   and every loop header subtracts the number of instructions of that
 *   region (the function body outside its loops, or the loop body outside
 *   nested loops; at least 1) and traps with `unreachable` when the fuel goes
 *   below zero. The cost depends only on the code, so the same module, input
 *   and fuel give the same result and the same fuel used.
 * - **Memory.** A module whose memory has no maximum, or a maximum above the
 *   limit, or an initial size above it, is refused (the sandbox does not
 *   rewrite it): per the spec, `memory.grow` past the maximum returns -1,
 *   so a module that allocates without end stops at the limit. Imported
 *   memories, tables and globals are refused. The memory is exported as
 *   `__nz_memory` for the host functions.
 * - **Features.** The module is read with the MVP plus mutable globals,
 *   sign extension, non-trapping float-to-int, bulk memory and multi-value;
 *   anything else (SIMD, threads, reference types, exceptions, tail calls,
 *   GC, ...) is refused, so the instrumentation knows every instruction.
 * - **Host functions.** Imports come from the module `nz`, each granted by
 *   a capability ({@linkcode HOST_FUNCTIONS}): `nz:log` gives `log(ptr, len)`,
 *   `nz:time` gives `now() -> f64` (milliseconds), `nz:kv` gives
 *   `kv_get(keyPtr, keyLen, outPtr, outCap) -> i32` (the value's length, -1
 *   when absent; written only when it fits) and `kv_set(keyPtr, keyLen,
 *   valPtr, valLen)`. An import no granted capability provides refuses the
 *   module at link time, naming the import and the capability.
 *
 * @example An infinite loop stops at its fuel
 * ```ts
 * import { createSandbox, SandboxLimitError } from "./wasm_sandbox.ts";
 * import binaryen from "binaryen";
 * import { throws } from "node:assert/strict";
 *
 * const m = binaryen.parseText(`(module (func (export "spin") (loop $l (br $l))))`);
 * const bytes = m.emitBinary();
 * m.dispose();
 * const sandbox = await createSandbox(bytes, { fuel: 1000 });
 * throws(() => sandbox.call("spin"), SandboxLimitError);
 * ```
 *
 * @module
 */

import type binaryenType from "binaryen";

type Binaryen = typeof binaryenType;
type BModule = InstanceType<Binaryen["Module"]>;

let binaryenPromise: Promise<Binaryen> | undefined;

/** binaryen, loaded on first use. */
function loadBinaryen(): Promise<Binaryen> {
  binaryenPromise ??= import("binaryen").then((m) => m.default);
  return binaryenPromise;
}

/** Size of a WebAssembly page in bytes. */
export const PAGE_SIZE = 65_536;

/** The name under which the instrumented module exports its fuel global. */
export const FUEL_EXPORT = "__nz_fuel";

/** The name under which the instrumented module exports its memory. */
export const MEMORY_EXPORT = "__nz_memory";

/** The import module name of the host functions. */
export const HOST_MODULE = "nz";

/** The host functions (imports of module `nz`) each capability grants. */
export const HOST_FUNCTIONS: Readonly<Record<string, readonly string[]>> = {
  "nz:log": ["log"],
  "nz:time": ["now"],
  "nz:kv": ["kv_get", "kv_set"],
};

/** A run stopped at one of the sandbox's limits. */
export class SandboxLimitError extends Error {
  /** Which limit: `fuel` or `memory`. */
  readonly limit: "fuel" | "memory";
  /** Fuel used by the call (all of it when `limit` is `fuel`). */
  readonly fuelUsed: number;
  /** Pages of memory at the end of the call. */
  readonly memoryPages: number;

  /** Creates the error from the limit hit, a message, the fuel used, the pages in use and the trap as `cause`. */
  constructor(limit: "fuel" | "memory", message: string, fuelUsed: number, memoryPages: number, cause?: unknown) {
    super(message, { cause });
    this.name = "SandboxLimitError";
    this.limit = limit;
    this.fuelUsed = fuelUsed;
    this.memoryPages = memoryPages;
  }
}

/** A module the sandbox refuses: malformed, unsupported, over the memory limit, or importing what it is not granted. */
export class SandboxLinkError extends Error {
  /** Creates the error from a message naming what was refused. */
  constructor(message: string) {
    super(message);
    this.name = "SandboxLinkError";
  }
}

/** Options of {@linkcode instrumentModule}. */
export interface InstrumentOptions {
  /** Memory limit in pages of 64 KiB (default 16, 1 MiB). */
  memoryPages?: number;
  /** Fuel the module starts with, which its start function runs on (default 0). */
  initialFuel?: number;
}

/** An instrumented module and what instrumentation found. */
export interface InstrumentedModule {
  /** The instrumented module's binary. */
  bytes: Uint8Array;
  /** The imports of the module, as `module.name`. */
  imports: { module: string; name: string; kind: "function" }[];
  /** Number of metering points inserted (function entries and loop headers). */
  meteringPoints: number;
}

const FEATURES_NAMES = ["MutableGlobals", "SignExt", "NontrappingFPToInt", "BulkMemory", "Multivalue"] as const;

/** Child expressions of one expression, by kind; undefined for a kind the sandbox does not support. */
function childrenOf(b: Binaryen, expr: number): number[] | undefined {
  const ids = (b as unknown as { ExpressionIds: Record<string, number> }).ExpressionIds;
  const id = b.getExpressionId(expr);
  // getExpressionInfo() throws on some leaves (unreachable), so leaves are answered first.
  const leaves = [ids.LocalGet, ids.GlobalGet, ids.Const, ids.Nop, ids.Unreachable, ids.MemorySize, ids.DataDrop];
  if (leaves.includes(id)) return [];
  const info = b.getExpressionInfo(expr) as unknown as Record<string, unknown>;
  const pick = (...fields: string[]) => fields.map((f) => info[f] as number).filter((e) => e);
  switch (id) {
    case ids.Block:
      return info.children as number[];
    case ids.If:
      return pick("condition", "ifTrue", "ifFalse");
    case ids.Loop:
      return pick("body");
    case ids.Break:
    case ids.Switch:
      return pick("condition", "value");
    case ids.Call:
      return info.operands as number[];
    case ids.CallIndirect:
      return [...(info.operands as number[]), ...pick("target")];
    case ids.LocalSet:
    case ids.GlobalSet:
    case ids.Unary:
    case ids.Drop:
    case ids.Return:
      return pick("value");
    case ids.Load:
      return pick("ptr");
    case ids.Store:
      return pick("ptr", "value");
    case ids.Binary:
      return pick("left", "right");
    case ids.Select:
      return pick("ifTrue", "ifFalse", "condition");
    case ids.MemoryGrow:
      return pick("delta");
    case ids.MemoryInit:
      return pick("dest", "offset", "size");
    case ids.MemoryCopy:
      return pick("dest", "source", "size");
    case ids.MemoryFill:
      return pick("dest", "value", "size");
    case ids.TupleMake:
      return info.operands as number[];
    case ids.TupleExtract:
      return pick("tuple");
    default:
      return undefined;
  }
}

/**
 * Instrument a module for the sandbox: fuel metering at function entries and
 * loop headers, the fuel global and the memory exported, the memory limit
 * checked. Deterministic: the same input gives the same output.
 *
 * @param bytes The module's binary.
 * @param options The memory limit and the initial fuel.
 * @returns The instrumented binary and the module's imports.
 * @throws {SandboxLinkError} The module is malformed, uses an unsupported
 *   feature or instruction, imports something other than functions, or its
 *   memory is not bounded within the limit.
 */
export async function instrumentModule(
  bytes: Uint8Array,
  options: InstrumentOptions = {},
): Promise<InstrumentedModule> {
  const memoryLimit = options.memoryPages ?? 16;
  if (!Number.isSafeInteger(memoryLimit) || memoryLimit < 0 || memoryLimit > 65_536) {
    throw new RangeError(`memoryPages must be an integer in 0..65536, not ${memoryLimit}`);
  }
  const initialFuel = options.initialFuel ?? 0;
  if (!Number.isSafeInteger(initialFuel) || initialFuel < 0) {
    throw new RangeError(`initialFuel must be a non-negative safe integer, not ${initialFuel}`);
  }
  if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) {
    throw new SandboxLinkError("not a valid WebAssembly module");
  }
  const b = await loadBinaryen();
  const features = FEATURES_NAMES.reduce((all, name) => all | b.Features[name], b.Features.MVP as number);
  let m: BModule;
  try {
    // readBinary(data, features) at runtime; the typings call it readBinaryWithFeatures.
    m = (b.readBinary as (data: Uint8Array, features: number) => BModule)(bytes, features);
  } catch (error) {
    throw new SandboxLinkError(`module uses a feature the sandbox does not support: ${error}`);
  }
  try {
    if (!m.validate()) throw new SandboxLinkError("module uses a feature the sandbox does not support");
    return instrument(b, m, memoryLimit, initialFuel);
  } finally {
    m.dispose();
  }
}

function instrument(b: Binaryen, m: BModule, memoryLimit: number, initialFuel: number): InstrumentedModule {
  // Exports and imports.
  for (let i = 0; i < m.getNumExports(); i++) {
    const name = b.getExportInfo(m.getExportByIndex(i)).name;
    if (name.startsWith("__nz_")) throw new SandboxLinkError(`export "${name}": the prefix __nz_ is the sandbox's`);
  }
  for (let i = 0; i < m.getNumGlobals(); i++) {
    const g = b.getGlobalInfo(m.getGlobalByIndex(i));
    if (g.module) throw new SandboxLinkError(`import "${g.module}.${g.base}": the sandbox gives no globals`);
  }
  for (let i = 0; i < m.getNumTables(); i++) {
    const t = b.getTableInfo(m.getTableByIndex(i));
    if (t.module) throw new SandboxLinkError(`import "${t.module}.${t.base}": the sandbox gives no tables`);
  }
  if (m.hasMemory()) {
    const mem = m.getMemoryInfo();
    if (mem.module) throw new SandboxLinkError(`import "${mem.module}.${mem.base}": the sandbox gives no memory`);
    if (mem.shared || mem.is64) throw new SandboxLinkError("shared and 64-bit memories are not supported");
    if (mem.max === undefined) {
      throw new SandboxLinkError(`memory has no maximum: declare one of at most ${memoryLimit} pages`);
    }
    if (mem.initial > memoryLimit || mem.max > memoryLimit) {
      throw new SandboxLinkError(
        `memory of ${mem.initial}..${mem.max} pages is over the limit of ${memoryLimit} pages`,
      );
    }
  }

  const fuel = "__nz_fuel";
  // i64.const takes one bigint at runtime; the typings still say (low, high).
  const i64 = (value: number) => (m.i64.const as unknown as (v: bigint) => number)(BigInt(value));
  m.addGlobal(fuel, b.i64, true, i64(initialFuel));
  m.addGlobalExport(fuel, FUEL_EXPORT);
  if (m.hasMemory()) {
    // Single memory (no multi-memory): its internal name is that of `memory.size`'s default.
    const probe = m.memory.size();
    const memName = (b.getExpressionInfo(probe) as unknown as { memory?: string }).memory ?? "0";
    m.addMemoryExport(memName, MEMORY_EXPORT);
  }

  const charge = (cost: number) =>
    m.block(null, [
      m.global.set(fuel, m.i64.sub(m.global.get(fuel, b.i64), i64(cost))),
      m.if(m.i64.lt_s(m.global.get(fuel, b.i64), i64(0)), m.unreachable()),
    ], b.none);
  // Runtime wrappers binaryen's typings leave out.
  const { Loop: loopApi, Function: functionApi } = b as unknown as {
    Loop: { getBody(e: number): number; setBody(e: number, body: number): void };
    Function: { setBody(f: number, body: number): void };
  };

  let points = 0;
  // The cost of a region: its instructions outside nested loops; nested loops get their own charge.
  const region = (root: number): number => {
    let count = 0;
    const stack = [root];
    while (stack.length > 0) {
      const expr = stack.pop()!;
      count++;
      if (b.getExpressionId(expr) === b.LoopId) {
        const body = loopApi.getBody(expr);
        const cost = Math.max(1, region(body));
        loopApi.setBody(expr, m.block(null, [charge(cost), body], b.getExpressionType(body)));
        points++;
        continue;
      }
      const children = childrenOf(b, expr);
      if (children === undefined) {
        throw new SandboxLinkError(`instruction kind ${b.getExpressionId(expr)} is not supported by the sandbox`);
      }
      stack.push(...children);
    }
    return count;
  };

  const imports: InstrumentedModule["imports"] = [];
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const f = m.getFunctionByIndex(i);
    const info = b.getFunctionInfo(f);
    if (info.module) {
      imports.push({ module: info.module, name: info.base ?? "", kind: "function" });
      continue;
    }
    const body = info.body;
    const cost = Math.max(1, region(body));
    functionApi.setBody(f, m.block(null, [charge(cost), body], b.getExpressionType(body)));
    points++;
  }
  if (!m.validate()) throw new Error("instrumented module does not validate (a sandbox bug)");
  return { bytes: m.emitBinary(), imports, meteringPoints: points };
}

/** The synchronous key-value namespace behind `nz:kv`. */
export interface SandboxKv {
  /** The value at `key`, if any. */
  get(key: string): Uint8Array | undefined;
  /** Stores `value` at `key`. */
  set(key: string, value: Uint8Array): void;
}

/** What the host functions call. */
export interface SandboxHost {
  /** `nz:log`: one UTF-8 string from the module. */
  log?: (message: string) => void;
  /** `nz:time`: milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
  /** `nz:kv`: the namespace `kv_get` and `kv_set` use (default: a new in-memory map). */
  kv?: SandboxKv;
}

/** Options of {@linkcode createSandbox}. */
export interface SandboxOptions {
  /** Fuel of each call (and of the start function), in instruction units. */
  fuel: number;
  /** Memory limit in pages of 64 KiB (default 16). */
  memoryPages?: number;
  /** Capabilities granted (`nz:log`, `nz:time`, `nz:kv`). */
  capabilities?: readonly string[];
  /** The host side of the granted host functions. */
  host?: SandboxHost;
}

/** What one call returned and used. */
export interface SandboxResult {
  /** The export's return value (a bigint for i64). */
  result: unknown;
  /** Fuel the call used. */
  fuelUsed: number;
  /** Pages of memory at the end of the call. */
  memoryPages: number;
}

/** An instantiated module inside its limits. */
export interface Sandbox {
  /** The functions the module exports (the sandbox's own `__nz_` exports left out). */
  readonly exports: readonly string[];
  /**
   * Call an exported function with the fuel of the sandbox.
   *
   * @throws {SandboxLimitError} The call ran out of fuel, or trapped with its
   *   memory at the limit.
   */
  call(name: string, ...args: unknown[]): SandboxResult;
  /** Pages of memory now. */
  memoryPages(): number;
}

/**
 * Instrument, link and instantiate a module inside the sandbox.
 *
 * @param bytes The module's binary.
 * @param options Fuel, memory limit, capabilities and host.
 * @returns The sandbox.
 * @throws {SandboxLinkError} The module is refused (see
 *   {@linkcode instrumentModule}), or imports a function that no granted
 *   capability provides.
 */
export async function createSandbox(bytes: Uint8Array, options: SandboxOptions): Promise<Sandbox> {
  const fuel = options.fuel;
  if (!Number.isSafeInteger(fuel) || fuel <= 0) {
    throw new RangeError(`fuel must be a positive safe integer, not ${fuel}`);
  }
  const memoryLimit = options.memoryPages ?? 16;
  const capabilities = options.capabilities ?? [];
  for (const capability of capabilities) {
    if (!(capability in HOST_FUNCTIONS)) throw new RangeError(`unknown sandbox capability "${capability}"`);
  }
  const instrumented = await instrumentModule(bytes, { memoryPages: memoryLimit, initialFuel: fuel });

  const granted = new Set(capabilities.flatMap((c) => HOST_FUNCTIONS[c]));
  for (const imp of instrumented.imports) {
    const needs = Object.entries(HOST_FUNCTIONS).find(([, names]) => names.includes(imp.name))?.[0];
    if (imp.module !== HOST_MODULE || needs === undefined) {
      throw new SandboxLinkError(`import "${imp.module}.${imp.name}" is not a host function of the sandbox`);
    }
    if (!granted.has(imp.name)) {
      throw new SandboxLinkError(`import "${imp.module}.${imp.name}" needs the capability "${needs}", not granted`);
    }
  }

  let instance: WebAssembly.Instance | undefined;
  const memory = () => instance?.exports[MEMORY_EXPORT] as WebAssembly.Memory | undefined;
  const bytesAt = (ptr: number, len: number): Uint8Array => {
    const mem = memory();
    if (mem === undefined) throw new RangeError("the module has no memory");
    const start = ptr >>> 0, end = start + (len >>> 0);
    if (end > mem.buffer.byteLength) throw new RangeError(`host call reads ${start}..${end}, outside memory`);
    return new Uint8Array(mem.buffer, start, end - start);
  };
  const decoder = new TextDecoder();
  const host = options.host ?? {};
  const kv = host.kv ?? new Map<string, Uint8Array>();
  const functions: Record<string, (...args: number[]) => unknown> = {
    log: (ptr, len) => void host.log?.(decoder.decode(bytesAt(ptr, len))),
    now: () => (host.now ?? Date.now)(),
    kv_get: (keyPtr, keyLen, outPtr, outCap) => {
      const value = kv.get(decoder.decode(bytesAt(keyPtr, keyLen)));
      if (value === undefined) return -1;
      if (value.length <= outCap >>> 0) bytesAt(outPtr, value.length).set(value);
      return value.length;
    },
    kv_set: (keyPtr, keyLen, valPtr, valLen) =>
      void kv.set(decoder.decode(bytesAt(keyPtr, keyLen)), bytesAt(valPtr, valLen).slice()),
  };
  const imports: Record<string, (...args: number[]) => unknown> = {};
  for (const imp of instrumented.imports) imports[imp.name] = functions[imp.name];

  const module = await WebAssembly.compile(instrumented.bytes as Uint8Array<ArrayBuffer>);
  const fuelGlobal = () => (instance!.exports[FUEL_EXPORT] as WebAssembly.Global).value as bigint;
  const pages = () => (memory()?.buffer.byteLength ?? 0) / PAGE_SIZE;
  const limitError = (error: unknown, remaining: bigint): SandboxLimitError | undefined => {
    if (remaining < 0n) {
      return new SandboxLimitError("fuel", `out of fuel after ${fuel} units`, fuel, pages(), error);
    }
    if (memory() !== undefined && pages() >= memoryLimit) {
      const used = fuel - Number(remaining);
      return new SandboxLimitError("memory", `memory limit of ${memoryLimit} pages reached`, used, pages(), error);
    }
  };
  try {
    instance = await WebAssembly.instantiate(module, { [HOST_MODULE]: imports });
  } catch (error) {
    // The start function trapped (its fuel is the sandbox's fuel, and the instance is lost with the trap).
    throw new SandboxLinkError(`the start function trapped: ${(error as Error).message}`);
  }
  const inst = instance;
  const names = Object.entries(inst.exports).filter(([n, v]) => typeof v === "function" && !n.startsWith("__nz_"))
    .map(([n]) => n);

  return {
    exports: names,
    memoryPages: pages,
    call(name: string, ...args: unknown[]): SandboxResult {
      if (!names.includes(name)) throw new RangeError(`the module exports no function "${name}"`);
      const fn = inst.exports[name] as (...args: unknown[]) => unknown;
      const global = inst.exports[FUEL_EXPORT] as WebAssembly.Global;
      global.value = BigInt(fuel);
      let result: unknown;
      try {
        result = fn(...args);
      } catch (error) {
        throw limitError(error, fuelGlobal()) ?? error;
      }
      return { result, fuelUsed: fuel - Number(fuelGlobal()), memoryPages: pages() };
    },
  };
}
