/**
 * The terminal QR code: the printed half blocks, read back into modules and
 * decoded with jsQR (an independent decoder), give the text again.
 */

import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { QR_MAX_COLUMNS, QR_QUIET_ZONE, renderQr } from "../../../kernel/cli/qr.ts";
import { formatNzUri } from "../../../kernel/discovery/nz_uri.ts";
import { modules, scan } from "./_qr_scan.ts";

const URI = formatNzUri({
  did: "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
  addresses: ["udp://192.0.2.7:7475", "tcp://[2001:db8::7]:7475", "ws://node.example:8080/nz"],
});

Deno.test("renderQr() prints half blocks that scan back to the nz:// URI on a dark terminal", () => {
  const printed = renderQr(URI);
  equal(scan(printed, true), URI);
});

Deno.test("renderQr() with invert prints half blocks that scan back to the URI on a light terminal", () => {
  const printed = renderQr(URI, { invert: true });
  equal(scan(printed, false), URI);
});

Deno.test("renderQr() output does not scan when the colours are taken the wrong way round", () => {
  // The decoder is told not to try inverted images: this proves the colour choice above matters.
  equal(scan(renderQr(URI), false), undefined);
});

Deno.test("renderQr() keeps a quiet zone of 4 light modules around the symbol", () => {
  const rows = modules(renderQr(URI));
  const size = rows[0].length; // square; an odd size leaves the last half line blank
  const zone = (row: boolean[]) => [...row.slice(0, QR_QUIET_ZONE), ...row.slice(size - QR_QUIET_ZONE)];
  for (let y = 0; y < size; y++) {
    const inZone = y < QR_QUIET_ZONE || y >= size - QR_QUIET_ZONE;
    deepEqual(inZone ? rows[y] : zone(rows[y]), Array(inZone ? size : 2 * QR_QUIET_ZONE).fill(true), `row ${y}`);
  }
  // The finder pattern's dark border starts right inside the zone.
  equal(rows[QR_QUIET_ZONE][QR_QUIET_ZONE], false);
});

Deno.test("renderQr() keeps a URI with 8 addresses within 80 columns, and it still scans", () => {
  const addresses = Array.from({ length: 8 }, (_, i) => `udp://203.0.113.${100 + i}:7475`);
  const uri = formatNzUri({ did: "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", addresses });
  const printed = renderQr(uri);
  ok(printed.split("\n").every((line) => [...line].length <= QR_MAX_COLUMNS));
  equal(scan(printed, true), uri);
});

Deno.test("renderQr() scans for a URI with 8 long addresses (the longest the node writes)", () => {
  const addresses = Array.from(
    { length: 8 },
    (_, i) => `wss://relay-${i}.nodes.example.org:443/nz/ws/${"x".repeat(40)}`,
  );
  const uri = formatNzUri({ did: "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", addresses });
  equal(scan(renderQr(uri), true, 3), uri);
});

Deno.test("renderQr() refuses text too long for any QR code with a RangeError", () => {
  throws(() => renderQr("x".repeat(4000)), RangeError);
});
