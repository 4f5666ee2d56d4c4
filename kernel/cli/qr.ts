/**
 * QR codes for the terminal (`nzcore identity qr`): the symbol drawn with
 * Unicode half blocks, two modules per character cell, so it keeps its
 * square shape in a terminal and a phone camera reads it off the screen.
 *
 * The symbol comes from `uqr` (ISO/IEC 18004), with error correction level M
 * (about 15 % of the symbol may be unreadable, for glare on a screen), or L
 * (7 %) when M would not fit an 80-column terminal, and a quiet zone of 4
 * modules, the width ISO/IEC 18004 section 9.1 asks for.
 *
 * @example
 * ```ts
 * import { renderQr } from "./qr.ts";
 *
 * const text = renderQr("nz://z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp");
 * console.assert(text.split("\n").length > 10);
 * ```
 *
 * @module
 */

import { encode, renderUnicodeCompact } from "uqr";

/** The quiet zone around the symbol, in modules (ISO/IEC 18004 section 9.1). */
export const QR_QUIET_ZONE = 4;
/** The widest code drawn at level M, in columns (quiet zone included); a wider one is drawn at level L. */
export const QR_MAX_COLUMNS = 80;

/** Options of {@linkcode renderQr}. */
export interface RenderQrOptions {
  /**
   * Draw the dark modules with ink (for a terminal with a light background). By default the light modules are drawn
   * (`█`) and the dark ones left blank, for the usual dark background.
   */
  invert?: boolean;
}

/**
 * Draws `text` as a QR code with Unicode half blocks (`█ ▀ ▄` and space), one line per two rows of modules, at
 * error correction level M, or L when M would be wider than {@linkcode QR_MAX_COLUMNS}.
 *
 * @param text What the code holds (byte mode, UTF-8).
 * @param options Which modules carry ink.
 * @returns The lines, joined by `\n`, without a trailing newline.
 * @throws {RangeError} when `text` is too long for the largest QR code at level M (2,331 bytes).
 */
export function renderQr(text: string, options: RenderQrOptions = {}): string {
  try {
    const wide = encode(text, { ecc: "M", border: QR_QUIET_ZONE }).size > QR_MAX_COLUMNS;
    return renderUnicodeCompact(text, {
      ecc: wide ? "L" : "M",
      border: QR_QUIET_ZONE,
      invert: options.invert ?? false,
    });
  } catch (error) {
    throw new RangeError(`Cannot draw a QR code of ${text.length} characters: ${(error as Error).message}`);
  }
}
