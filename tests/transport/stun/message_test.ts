import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import vectors from "../../../spec/vectors/rfc5769_stun.json" with { type: "json" };
import {
  addStunAttribute,
  CHANGE_REQUEST,
  createStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  ERROR_CODE,
  getStunAttribute,
  longTermKey,
  MAPPED_ADDRESS,
  NONCE,
  OTHER_ADDRESS,
  PASSWORD_ALGORITHM,
  PASSWORD_ALGORITHMS,
  REALM,
  RESPONSE_PORT,
  shortTermKey,
  SOFTWARE,
  type StunAttribute,
  type StunClass,
  StunError,
  type StunMessage,
  stunMessageSize,
  UNKNOWN_ATTRIBUTES,
  USERHASH,
  userHash,
  USERNAME,
  verifyStunFingerprint,
  verifyStunIntegrity,
  XOR_MAPPED_ADDRESS,
} from "../../../transport/stun/mod.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

type Vector = (typeof vectors.vectors)[number];

function keyOf(v: Vector, password = v.credentials.password): Uint8Array {
  const c = v.credentials;
  if (c.kind === "short-term") return shortTermKey(password);
  return longTermKey({ username: c.username!, realm: c.realm!, password }, c.algorithm as "md5" | "sha256");
}

/** Throws unless `fn` throws a StunError (any other exception fails the property). */
function onlyStunError(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof StunError)) throw error;
  }
}

for (const v of vectors.vectors) {
  Deno.test(`decodeStunMessage() reads ${v.name} and its integrity verifies`, () => {
    const bytes = hex(v.message);
    const msg = decodeStunMessage(bytes);
    equal(msg.method, v.method);
    equal(msg.class, v.class);
    eql(msg.transactionId, hex(v.transactionId));
    eql(
      msg.attributes.map((a) => ({ type: a.type, value: toHex(a.value) })),
      v.attributes.map(({ type, value }) => ({ type, value })),
    );
    ok(verifyStunIntegrity(msg, keyOf(v)), "integrity with the right password");
    ok(!verifyStunIntegrity(msg, keyOf(v, v.credentials.password + "x")), "integrity with a wrong password");
    equal(msg.messageIntegrity !== undefined, v.integrity === "sha1");
    equal(msg.messageIntegritySha256 !== undefined, v.integrity === "sha256");
    equal(verifyStunFingerprint(msg), v.fingerprint);
    const f = v.fields as Record<string, unknown>;
    if ("software" in f) equal(getStunAttribute(msg, SOFTWARE), f.software);
    if ("username" in f) equal(getStunAttribute(msg, USERNAME), f.username);
    if ("nonce" in f) equal(getStunAttribute(msg, NONCE), f.nonce);
    if ("realm" in f) equal(getStunAttribute(msg, REALM), f.realm);
    if ("xorMappedAddress" in f) eql(getStunAttribute(msg, XOR_MAPPED_ADDRESS), f.xorMappedAddress);
    if ("userhash" in f) {
      eql(getStunAttribute(msg, USERHASH), hex(f.userhash as string));
      eql(userHash(v.credentials.username!, v.credentials.realm!), hex(f.userhash as string));
    }
    if ("passwordAlgorithm" in f) equal(getStunAttribute(msg, PASSWORD_ALGORITHM)?.algorithm, f.passwordAlgorithm);
  });

  Deno.test(`encodeStunMessage() reproduces ${v.name} byte for byte`, () => {
    const message: StunMessage = {
      method: v.method,
      class: v.class as StunClass,
      transactionId: hex(v.transactionId),
      attributes: v.attributes.map(({ type, value }) => ({ type, value: hex(value) })),
    };
    const bytes = encodeStunMessage(message, {
      integrity: { key: keyOf(v), algorithm: v.integrity as "sha1" | "sha256" },
      fingerprint: v.fingerprint,
      paddingByte: parseInt(v.paddingByte, 16),
    });
    equal(toHex(bytes), v.message);
  });

  Deno.test(`a flipped bit in ${v.name} fails its integrity or fingerprint, or its decoding`, () => {
    const bytes = hex(v.message);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const copy = bytes.slice();
      copy[bit >> 3] ^= 1 << (bit & 7);
      let msg;
      try {
        msg = decodeStunMessage(copy);
      } catch (error) {
        ok(error instanceof StunError);
        continue;
      }
      const integrityOk = verifyStunIntegrity(msg, keyOf(v));
      const fingerprintOk = !v.fingerprint || verifyStunFingerprint(msg);
      // A flip in a padding byte is invisible by design (RFC 8489 section 14: padding is ignored).
      ok(!(integrityOk && fingerprintOk) || isPaddingByte(bytes, bit >> 3), `bit ${bit} went unnoticed`);
    }
  });
}

/** Whether byte `at` of a well-formed message is attribute padding. */
function isPaddingByte(bytes: Uint8Array, at: number): boolean {
  for (let i = 20; i < bytes.length;) {
    const len = bytes[i + 2] << 8 | bytes[i + 3];
    const end = i + 4 + ((len + 3) & ~3);
    if (at >= i + 4 + len && at < end) return true;
    i = end;
  }
  return false;
}

Deno.test("the RFC 5769 long-term password is the SASLprep form of the one the RFC prints", () => {
  // RFC 5769 section 2.4 prints the password before SASLprep (soft hyphen, feminine ordinal, roman numeral nine);
  // RFC 8489 uses OpaqueString, which does not map those, so the vector carries the prepared form.
  const v = vectors.vectors[3];
  equal(v.credentials.passwordAsPrinted!.normalize("NFKC").replace("\u00ad", ""), v.credentials.password);
});

Deno.test("the message type interleaves method and class bits (RFC 8489 section 5)", () => {
  const cases: [number, StunClass, number][] = [
    [0x001, "request", 0x0001],
    [0x001, "indication", 0x0011],
    [0x001, "success", 0x0101],
    [0x001, "error", 0x0111],
    [0x003, "request", 0x0003], // TURN Allocate
    [0x009, "success", 0x0109], // TURN ChannelBind
    [0xfff, "error", 0x3fff],
    [0x080, "request", 0x0200],
  ];
  for (const [method, cls, type] of cases) {
    const bytes = encodeStunMessage(createStunMessage(method, cls));
    equal(bytes[0] << 8 | bytes[1], type, `${method} ${cls}`);
    const back = decodeStunMessage(bytes);
    equal(back.method, method);
    equal(back.class, cls);
  }
});

Deno.test("address attributes round-trip IPv4 and IPv6, XOR'd and plain", () => {
  const msg = createStunMessage(1, "success");
  const v4 = { hostname: "203.0.113.9", port: 65535 };
  const v6 = { hostname: "2001:db8::7", port: 1 };
  addStunAttribute(msg, XOR_MAPPED_ADDRESS, v6);
  addStunAttribute(msg, MAPPED_ADDRESS, v4);
  addStunAttribute(msg, OTHER_ADDRESS, { hostname: "::ffff:192.0.2.1", port: 3479 });
  const back = decodeStunMessage(encodeStunMessage(msg));
  eql(getStunAttribute(back, XOR_MAPPED_ADDRESS), v6);
  eql(getStunAttribute(back, MAPPED_ADDRESS), v4);
  eql(getStunAttribute(back, OTHER_ADDRESS), { hostname: "::ffff:c000:201", port: 3479 });
  throws(() => addStunAttribute(msg, MAPPED_ADDRESS, { hostname: "example.org", port: 1 }), RangeError);
  throws(() => addStunAttribute(msg, MAPPED_ADDRESS, { hostname: "192.0.2.1", port: 70000 }), RangeError);
});

Deno.test("ERROR-CODE, UNKNOWN-ATTRIBUTES, CHANGE-REQUEST, RESPONSE-PORT and PASSWORD-ALGORITHMS round-trip", () => {
  const msg = createStunMessage(1, "error");
  addStunAttribute(msg, ERROR_CODE, { code: 420, reason: "Unknown Attribute" });
  addStunAttribute(msg, UNKNOWN_ATTRIBUTES, [0x0027, 0x7777]);
  addStunAttribute(msg, CHANGE_REQUEST, { changeIp: true, changePort: false });
  addStunAttribute(msg, RESPONSE_PORT, 4242);
  const algorithms = [{ algorithm: 2, parameters: new Uint8Array() }, { algorithm: 9, parameters: hex("0102030405") }];
  addStunAttribute(msg, PASSWORD_ALGORITHMS, algorithms);
  const back = decodeStunMessage(encodeStunMessage(msg, { fingerprint: true }));
  eql(getStunAttribute(back, ERROR_CODE), { code: 420, reason: "Unknown Attribute" });
  eql(getStunAttribute(back, UNKNOWN_ATTRIBUTES), [0x0027, 0x7777]);
  eql(getStunAttribute(back, CHANGE_REQUEST), { changeIp: true, changePort: false });
  equal(getStunAttribute(back, RESPONSE_PORT), 4242);
  eql(getStunAttribute(back, PASSWORD_ALGORITHMS), algorithms);
  throws(() => addStunAttribute(msg, ERROR_CODE, { code: 200, reason: "" }), RangeError);
});

Deno.test("attributes after MESSAGE-INTEGRITY are ignored, except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT", () => {
  const key = shortTermKey("pw");
  const signed = encodeStunMessage(addStunAttribute(createStunMessage(1, "request"), SOFTWARE, "a"), {
    integrity: { key, algorithm: "both", sha256Length: 16 },
  });
  // Append SOFTWARE "b" after the integrity attributes and fix the length: it must be ignored.
  const extra = encodeStunMessage(addStunAttribute(createStunMessage(1, "request"), SOFTWARE, "b")).subarray(20);
  const bytes = new Uint8Array(signed.length + extra.length);
  bytes.set(signed);
  bytes.set(extra, signed.length);
  new DataView(bytes.buffer).setUint16(2, bytes.length - 20);
  const msg = decodeStunMessage(bytes);
  eql(msg.attributes.map((a) => a.type), [0x8022]);
  equal(getStunAttribute(msg, SOFTWARE), "a");
  ok(msg.messageIntegrity && msg.messageIntegritySha256);
  equal(msg.messageIntegritySha256!.value.length, 16);
  ok(verifyStunIntegrity(msg, key), "the truncated SHA-256 integrity verifies");
  ok(!verifyStunIntegrity(msg, shortTermKey("other")));
});

Deno.test("decodeStunMessage() refuses an attribute after FINGERPRINT, a bad header and malformed known attributes", () => {
  const base = encodeStunMessage(createStunMessage(1, "request"), { fingerprint: true });
  const after = new Uint8Array(base.length + 8);
  after.set(base);
  after.set([0x80, 0x22, 0, 4, 0x61, 0x62, 0x63, 0x64], base.length);
  new DataView(after.buffer).setUint16(2, after.length - 20);
  throws(() => decodeStunMessage(after), /follows FINGERPRINT/);
  const noCookie = base.slice();
  noCookie[4] = 0;
  throws(() => decodeStunMessage(noCookie), /magic cookie/);
  throws(() => decodeStunMessage(base.subarray(0, 19)), /expected >= 20/);
  throws(() => decodeStunMessage(base.subarray(0, 24)), /length field/);
  const attr = (type: number, value: number[]) => {
    const m = createStunMessage(1, "request");
    m.attributes.push({ type, value: Uint8Array.from(value) });
    return encodeStunMessage(m);
  };
  throws(
    () => decodeStunMessage(attr(0x0020, [0, 3, 0, 0, 1, 2, 3, 4])),
    /XOR-MAPPED-ADDRESS: unknown address family 3/,
  );
  throws(() => decodeStunMessage(attr(0x0001, [0, 1, 0, 0, 1, 2, 3])), /MAPPED-ADDRESS: length is 7/);
  throws(() => decodeStunMessage(attr(0x0009, [0, 0, 7, 0])), /ERROR-CODE/);
  throws(() => decodeStunMessage(attr(0x0006, [0xff, 0xfe])), /USERNAME: not UTF-8/);
  throws(() => decodeStunMessage(attr(0x0008, [1, 2, 3, 4])), /MESSAGE-INTEGRITY: length is 4/);
  throws(() => decodeStunMessage(attr(0x0003, [0, 0])), /CHANGE-REQUEST/);
  throws(() => decodeStunMessage(attr(0x000a, [0, 1, 2])), /UNKNOWN-ATTRIBUTES/);
  throws(() => decodeStunMessage(attr(0x001e, [1, 2, 3])), /USERHASH: length is 3, expected 32/);
  throws(() => decodeStunMessage("nope" as unknown as Uint8Array), StunError);
});

Deno.test("stunMessageSize() reads a frame's size from its header (TCP framing)", () => {
  const bytes = encodeStunMessage(addStunAttribute(createStunMessage(1, "request"), SOFTWARE, "abc"));
  equal(stunMessageSize(bytes.subarray(0, 20)), bytes.length);
  equal(stunMessageSize(bytes.subarray(0, 19)), null);
  throws(() => stunMessageSize(new Uint8Array(20)), StunError);
});

// --- Properties ----------------------------------------------------------------------------------

const KNOWN = new Set([
  0x0001,
  0x0003,
  0x0004,
  0x0005,
  0x0006,
  0x0008,
  0x0009,
  0x000a,
  0x0014,
  0x0015,
  0x001c,
  0x001d,
  0x001e,
  0x0020,
  0x0026,
  0x0027,
  0x8002,
  0x8022,
  0x8023,
  0x8028,
  0x802b,
  0x802c,
]);
const rawAttribute: fc.Arbitrary<StunAttribute> = fc.record({
  type: fc.integer({ min: 0, max: 0xffff }).filter((t) => !KNOWN.has(t)),
  value: fc.uint8Array({ maxLength: 40 }),
});
const arbMessage: fc.Arbitrary<StunMessage> = fc.record({
  method: fc.integer({ min: 0, max: 0xfff }),
  class: fc.constantFrom<StunClass>("request", "indication", "success", "error"),
  transactionId: fc.uint8Array({ minLength: 12, maxLength: 12 }),
  attributes: fc.array(rawAttribute, { maxLength: 8 }),
});

Deno.test("property: encode then decode gives back the message, and its checks verify", () => {
  fc.assert(
    fc.property(
      arbMessage,
      fc.option(fc.constantFrom<"sha1" | "sha256" | "both">("sha1", "sha256", "both")),
      fc.boolean(),
      fc.uint8Array({ minLength: 1, maxLength: 20 }),
      (message, algorithm, fingerprint, key) => {
        const integrity = algorithm === null ? undefined : { key, algorithm, sha256Length: 20 };
        const back = decodeStunMessage(encodeStunMessage(message, { integrity, fingerprint }));
        equal(back.method, message.method);
        equal(back.class, message.class);
        eql(back.transactionId, message.transactionId);
        const plain = (list: StunAttribute[]) => list.map((a) => ({ type: a.type, value: a.value.slice() }));
        eql(plain(back.attributes), plain(message.attributes));
        equal(verifyStunIntegrity(back, key), integrity !== undefined);
        equal(verifyStunFingerprint(back), fingerprint);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("property: random, truncated and mutated bytes decode or throw StunError, nothing else", () => {
  const samples = vectors.vectors.map((v) => hex(v.message));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => onlyStunError(() => decodeStunMessage(bytes))), {
    numRuns: 2000,
  });
  // Random bytes behind a valid header, so the attribute parser is exercised.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }).map((b) => b.subarray(0, b.length & ~3)), (body) => {
      const bytes = new Uint8Array(20 + body.length);
      bytes.set(samples[0].subarray(0, 20));
      bytes.set(body, 20);
      new DataView(bytes.buffer).setUint16(2, body.length);
      onlyStunError(() => decodeStunMessage(bytes));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.constantFrom(...samples),
      fc.nat(),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      (sample, cut, edits) => {
        const truncated = sample.subarray(0, cut % (sample.length + 1));
        onlyStunError(() => decodeStunMessage(truncated));
        const mutated = sample.slice();
        for (const [at, byte] of edits) mutated[at % mutated.length] = byte;
        onlyStunError(() => {
          const msg = decodeStunMessage(mutated);
          verifyStunFingerprint(msg);
          verifyStunIntegrity(msg, new Uint8Array(8));
          for (const codec of [XOR_MAPPED_ADDRESS, SOFTWARE, USERNAME, NONCE, REALM]) {
            getStunAttribute(msg, codec as typeof SOFTWARE);
          }
        });
      },
    ),
    { numRuns: 2000 },
  );
});
