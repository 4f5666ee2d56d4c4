/**
 * Reads a QR code printed with half blocks back, as a camera would: the
 * characters become modules, the modules pixels, and jsQR (a decoder
 * independent of the encoder) reads the pixels.
 */

import jsqr from "jsqr";

// jsQR is CommonJS: Deno's default import is its module.exports (the function), which its types call `default`.
const jsQR = jsqr as unknown as (typeof jsqr)["default"];

const HALF: Record<string, [boolean, boolean]> = {
  "█": [true, true],
  "▀": [true, false],
  "▄": [false, true],
  " ": [false, false],
};

/** The modules of printed half blocks, row by row: true where the terminal draws ink. */
export function modules(printed: string): boolean[][] {
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
export function scan(printed: string, inkIsLight: boolean, scale = 4): string | undefined {
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
