/**
 * The terminal QR code: the printed half blocks, read back into modules and
 * decoded with jsQR (an independent decoder), give the text again.
 */

import { deepEqual, equal, throws } from "node:assert/strict";
import jsqr from "jsqr";
import { QR_QUIET_ZONE, renderQr } from "../../../kernel/cli/qr.ts";
import { formatNzUri } from "../../../kernel/discovery/nz_uri.ts";

// jsQR is CommonJS: Deno's default import is its module.exports (the function), which its types call `default`.
const jsQR = jsqr as unknown as (typeof jsqr)["default"];

const HALF: Record<string, [boolean, boolean]> = {
  "█": [true, true],
  "▀": [true, false],
  "▄": [false, true],
  " ": [
    false,
    false,
  ],
};

/** The modules of printed half blocks, row by row: true where the terminal draws ink. */
function modules(printed: string): boolean[][] {
  const rows: boolean[][] = [];
  for (const line of printed.split("\n")) {
    const cells = [...line].map((c) => {
      const half = HALF[c];
      if (!half) throw new Error(`unexpected character ${JSON.stringify(c)} in the QR code`);
      return half;
    });
    rows.push(cells.map(([top]) => top), cells.map(([, bottom]) => bottom));
  }
  return rows;
}

/**
 * Reads printed half blocks back as an image, as a camera would see them: `inkIsLight` says what the terminal draws
 * glyphs in (light on a dark background, or dark on a light one). Each module becomes `scale` × `scale` pixels, and
 * the terminal's background surrounds it all.
 */
function scan(printed: string, inkIsLight: boolean, scale = 4): string | undefined {
  const rows = modules(printed);
  const width = Math.max(...rows.map((r) => r.length));
  const margin = 8; // the terminal around the code
  const size = (Math.max(width, rows.length) + 2 * margin) * scale;
  const pixels = new Uint8ClampedArray(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const my = Math.floor(y / scale) - margin, mx = Math.floor(x / scale) - margin;
      const ink = rows[my]?.[mx] ?? false;
      const light = ink === inkIsLight;
      const i = (y * size + x) * 4;
      pixels[i] = pixels[i + 1] = pixels[i + 2] = light ? 255 : 0;
      pixels[i + 3] = 255;
    }
  }
  return jsQR(pixels, size, size, { inversionAttempts: "dontInvert" })?.data;
}

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
