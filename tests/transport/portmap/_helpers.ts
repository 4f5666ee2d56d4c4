/** Helpers for the port-mapping tests: hex, and loopback sockets. */

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes of a hex string. */
export function fromHex(hex: string): Uint8Array {
  return new Uint8Array((hex.match(/../g) ?? []).map((b) => parseInt(b, 16)));
}

/** A UDP socket on loopback standing in for a silent or hostile gateway; `using` closes it. */
export function loopbackSocket(): { conn: Deno.DatagramConn; port: number } & Disposable {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  return {
    conn,
    port: (conn.addr as Deno.NetAddr).port,
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };
}
