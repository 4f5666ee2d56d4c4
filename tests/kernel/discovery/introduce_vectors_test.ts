/**
 * spec/vectors/nz_introduce_01.json (written by scripts/gen_introduce_vectors.ts with the noble reference): the
 * receiver's checks, the ANSWER codec and the nz:// URI codec give what the vectors say.
 */

import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import { fromHex, toHex } from "../../../kernel/bytes.ts";
import {
  checkIntroduction,
  decodeIntroductionAnswer,
  encodeIntroductionAnswer,
  type IntroductionStatus,
} from "../../../kernel/discovery/introduction.ts";
import { formatNzUri, parseNzUri } from "../../../kernel/discovery/nz_uri.ts";
import { encodeDidKey } from "../../../kernel/identity/did.ts";

interface Vectors {
  now: number;
  nodes: Record<string, { seed: string; publicKey: string; nodeId: string }>;
  introductions: {
    name: string;
    bytes: string;
    status: string;
    code: number;
    introduced?: string;
    addresses?: string[];
  }[];
  answers: { status: string; code: number; accepted: boolean; reason: string; bytes: string }[];
  refusedAnswers: { name: string; bytes: string }[];
  uris: { name: string; uri: string; canonical: string; publicKey: string; addresses: string[] }[];
  refusedUris: { name: string; uri: string }[];
}

const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("../../../spec/vectors/nz_introduce_01.json", import.meta.url)),
);
const { I, R } = vectors.nodes;

for (const v of vectors.introductions) {
  Deno.test(`introduction vector: ${v.name} → ${v.status}`, () => {
    const checked = checkIntroduction(fromHex(v.bytes), {
      introducer: fromHex(I.publicKey),
      self: R.nodeId,
      now: vectors.now,
    });
    if (v.status === "dialing") {
      equal(checked.status, "valid", "reason" in checked ? checked.reason : "");
      ok(checked.status === "valid");
      equal(checked.nodeId, vectors.nodes[v.introduced!].nodeId);
      eql(checked.addresses, v.addresses);
      equal(encodeIntroductionAnswer("dialing")[0], v.code);
    } else {
      equal(checked.status, v.status);
      equal(encodeIntroductionAnswer(v.status as IntroductionStatus)[0], v.code);
    }
  });
}

Deno.test("answer vectors decode to their status and encode back to their bytes", () => {
  for (const v of vectors.answers) {
    const answer = decodeIntroductionAnswer(fromHex(v.bytes));
    eql(answer, { code: v.code, status: v.status, accepted: v.accepted, reason: v.reason });
    if (v.status !== "unknown") {
      equal(toHex(encodeIntroductionAnswer(v.status as IntroductionStatus, v.reason)), v.bytes);
    }
  }
});

Deno.test("refused answer vectors throw SyntaxError", () => {
  for (const v of vectors.refusedAnswers) throws(() => decodeIntroductionAnswer(fromHex(v.bytes)), SyntaxError, v.name);
});

for (const v of vectors.uris) {
  Deno.test(`URI vector: ${v.name} parses, and formats to its canonical form`, () => {
    const parsed = parseNzUri(v.uri);
    equal(toHex(parsed.publicKey), v.publicKey);
    equal(parsed.did, encodeDidKey(fromHex(v.publicKey)));
    eql(parsed.addresses, v.addresses);
    equal(formatNzUri({ publicKey: parsed.publicKey, addresses: parsed.addresses }), v.canonical);
    equal(formatNzUri({ did: parsed.did, addresses: v.addresses }), v.canonical);
  });
}

for (const v of vectors.refusedUris) {
  Deno.test(`URI vector: ${v.name} is refused with a SyntaxError`, () => {
    throws(() => parseNzUri(v.uri), SyntaxError);
  });
}
