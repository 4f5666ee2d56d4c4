/** The nz:// URI codec: format and parse, round trips, and every refusal naming what is wrong. */

import { deepStrictEqual as eql, equal, throws } from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex } from "../../../kernel/bytes.ts";
import {
  formatNzUri,
  isNzUri,
  MAX_NZ_URI_ADDRESSES,
  MAX_NZ_URI_LENGTH,
  parseNzUri,
} from "../../../kernel/discovery/nz_uri.ts";

// W3C did:key test vectors (ed25519-x25519.json): the key of the all-zero seed.
const DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
const PUBLIC_KEY = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
const KEY = DID.slice("did:key:".length);

Deno.test("formatNzUri() writes the key and each address percent-encoded, in order", () => {
  const uri = formatNzUri({ did: DID, addresses: ["udp://192.0.2.7:7475", "tcp://[2001:db8::1]:7475"] });
  equal(uri, `nz://${KEY}?addr=udp%3A%2F%2F192.0.2.7%3A7475&addr=tcp%3A%2F%2F%5B2001%3Adb8%3A%3A1%5D%3A7475`);
});

Deno.test("formatNzUri() takes a public key instead of a DID", () => {
  equal(formatNzUri({ publicKey: fromHex(PUBLIC_KEY) }), `nz://${KEY}`);
});

Deno.test("parseNzUri() gives the DID, node ID, public key and addresses", () => {
  const parsed = parseNzUri(`nz://${KEY}?addr=udp%3A%2F%2F192.0.2.7%3A7475&addr=ws%3A%2F%2Fh.example%3A80%2Fnz`);
  equal(parsed.did, DID);
  equal(toHex(parsed.publicKey), PUBLIC_KEY);
  equal(parsed.nodeId, "139e3940e64b5491722088d9a0d741628fc826e09475d341a780acde3c4b8070" /* sha256sum of the key */);
  eql(parsed.addresses, ["udp://192.0.2.7:7475", "ws://h.example:80/nz"]);
});

Deno.test("parseNzUri() accepts a URI with no address, an upper-case scheme and lower-case hex", () => {
  eql(parseNzUri(`nz://${KEY}`).addresses, []);
  eql(parseNzUri(`NZ://${KEY}?addr=tcp%3a%2f%2fh%3a1`).addresses, ["tcp://h:1"]);
});

Deno.test("parseNzUri() accepts : / @ unencoded, as typed by hand", () => {
  eql(parseNzUri(`nz://${KEY}?addr=tcp://192.0.2.7:7475`).addresses, ["tcp://192.0.2.7:7475"]);
});

Deno.test("parseNzUri() ignores well-formed parameters other than addr", () => {
  eql(parseNzUri(`nz://${KEY}?name=laptop&addr=tcp%3A%2F%2Fh%3A1&v=2`).addresses, ["tcp://h:1"]);
});

Deno.test("parseNzUri() decodes percent-encoded UTF-8 in an address", () => {
  eql(parseNzUri(`nz://${KEY}?addr=ws%3A%2F%2Fb%C3%BCcher.example%3A80%2F`).addresses, ["ws://bücher.example:80/"]);
});

const REFUSED: [string, string, RegExp][] = [
  ["another scheme", `http://${KEY}`, /start with "nz:\/\/"/],
  ["a did:key as the key", `nz://${DID}`, /node key must be "z"/],
  ["no key", "nz://?addr=tcp%3A%2F%2Fh%3A1", /node key/],
  ["a key outside base58 (0)", `nz://z6Mk0TBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp`, /base58btc/],
  ["a key of the wrong multicodec", "nz://z" + "2".repeat(46), /not an Ed25519 did:key/],
  ["a truncated key", `nz://${KEY.slice(0, -3)}`, /not an Ed25519 did:key/],
  ["a path", `nz://${KEY}/x`, /path/],
  ["a fragment", `nz://${KEY}#x`, /fragment/],
  ["an empty query", `nz://${KEY}?`, /parameter 1/],
  ["an empty parameter", `nz://${KEY}?addr=tcp%3A%2F%2Fh%3A1&`, /parameter 2/],
  ["a parameter without =", `nz://${KEY}?addr`, /parameter 1 is not NAME=VALUE/],
  ["an upper-case parameter name", `nz://${KEY}?ADDR=tcp%3A%2F%2Fh%3A1`, /lowercase name/],
  ["a raw space", `nz://${KEY}?addr=tcp://h :1`, /must be percent-encoded/],
  ["raw brackets", `nz://${KEY}?addr=tcp://[::1]:1`, /must be percent-encoded/],
  ["a raw +", `nz://${KEY}?addr=tcp://h+1:1`, /must be percent-encoded/],
  ["a malformed %XX", `nz://${KEY}?addr=tcp%3`, /malformed %XX/],
  ["a non-hex %XX", `nz://${KEY}?addr=tcp%zz`, /malformed %XX/],
  ["bytes that are not UTF-8", `nz://${KEY}?addr=tcp%3A%2F%2F%FF%3A1`, /not UTF-8/],
  ["an empty address", `nz://${KEY}?addr=`, /length is 0 bytes/],
  ["an address without a scheme", `nz://${KEY}?addr=192.0.2.7%3A7475`, /does not start with a scheme/],
  ["an address with an upper-case scheme", `nz://${KEY}?addr=TCP%3A%2F%2Fh%3A1`, /does not start with a scheme/],
  ["an address with a space", `nz://${KEY}?addr=tcp%3A%2F%2Fh%20x%3A1`, /control character or a space/],
  ["an address with a control character", `nz://${KEY}?addr=tcp%3A%2F%2Fh%0A%3A1`, /control character/],
  ["an address of 201 bytes", `nz://${KEY}?addr=tcp%3A%2F%2F${"a".repeat(195)}`, /length is 201 bytes/],
  ["an address given twice", `nz://${KEY}?addr=tcp%3A%2F%2Fh%3A1&addr=tcp://h:1`, /given twice/],
  [
    "9 addresses",
    `nz://${KEY}?` + Array.from({ length: 9 }, (_, i) => `addr=tcp%3A%2F%2Fh%3A${i}`).join("&"),
    /more than 8 addr/,
  ],
  ["2,049 characters", `nz://${KEY}?x=${"a".repeat(MAX_NZ_URI_LENGTH)}`.slice(0, 2049), /length is 2049/],
];

for (const [what, uri, message] of REFUSED) {
  Deno.test(`parseNzUri() refuses ${what} with a SyntaxError naming it`, () => {
    throws(() => parseNzUri(uri), (e: Error) => e instanceof SyntaxError && message.test(e.message));
  });
}

Deno.test("formatNzUri() refuses a bad DID, a bad address, a duplicate, and more than 8 addresses", () => {
  throws(() => formatNzUri({ did: "did:key:zabc" }), SyntaxError);
  throws(() => formatNzUri({ did: DID, addresses: ["192.0.2.7:7475"] }), /addresses\[0\].*scheme/);
  throws(() => formatNzUri({ did: DID, addresses: ["tcp://h:1", "tcp://h:1"] }), /addresses\[1\].*twice/);
  const nine = Array.from({ length: MAX_NZ_URI_ADDRESSES + 1 }, (_, i) => `tcp://h:${i}`);
  throws(() => formatNzUri({ did: DID, addresses: nine }), RangeError);
});

Deno.test("isNzUri() tells nz:// URIs from transport addresses", () => {
  equal(isNzUri(`nz://${KEY}`), true);
  equal(isNzUri(`Nz://${KEY}`), true);
  equal(isNzUri("tcp://192.0.2.7:7475"), false);
});

const address = fc.tuple(
  fc.constantFrom("tcp", "udp", "ws", "wss", "x-a.b+c"),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
).map(([scheme, rest]) => `${scheme}://${rest}`)
  // deno-lint-ignore no-control-regex
  .filter((a) => !/[\u0000-\u0020\u007f]/.test(a) && new TextEncoder().encode(a).length <= 200);

Deno.test("parseNzUri(formatNzUri(x)) gives x back for any key and up to 8 distinct addresses", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uniqueArray(address, { maxLength: MAX_NZ_URI_ADDRESSES }),
      (publicKey, addresses) => {
        const uri = formatNzUri({ publicKey, addresses });
        const parsed = parseNzUri(uri);
        eql(parsed.publicKey, publicKey);
        eql(parsed.addresses, addresses);
        equal(formatNzUri({ did: parsed.did, addresses: parsed.addresses }), uri);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("parseNzUri() never throws anything but a SyntaxError, whatever the input", () => {
  const near = fc.string({ maxLength: 300 }).map((s) => `nz://${KEY}?${s}`);
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 300 }), near), (text) => {
      try {
        parseNzUri(text);
      } catch (error) {
        if (!(error instanceof SyntaxError)) throw error;
      }
    }),
    { numRuns: 2000 },
  );
});
