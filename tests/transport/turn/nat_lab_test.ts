import { deepStrictEqual as eql, equal, match } from "node:assert/strict";
import { LAB, labUnavailable, NatLab } from "../../../scripts/nat_lab.ts";

// hostB sits behind gwB, a symmetric NAT (address-and-port-dependent mapping and filtering): no peer can
// reach it directly, but through its allocation on the lab's coturn (srv) a public peer (pub) can.
const unavailable = await labUnavailable({ upnp: false });
if (unavailable) console.log(`turn client NAT lab test skipped: ${unavailable}`);
const fixture = new URL("./_fixture.ts", import.meta.url).pathname;

Deno.test({
  name: "turn client behind a symmetric NAT: a public peer and the client talk through the relayed address",
  ignore: unavailable !== null,
  fn: async () => {
    await using lab = await NatLab.up({ natB: "sym", upnp: false });
    for (const [transport, port] of [["udp", 7000], ["tcp", 7001]] as const) {
      const count = 4;
      const peer = lab.spawn("pub", [
        Deno.execPath(),
        "run",
        "-A",
        fixture,
        JSON.stringify({ scenario: "labPeer", port, count }),
      ]);
      const lines = peer.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!out.includes("listening")) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`the peer ended early: ${out}`);
        out += value;
      }
      const client = await lab.exec("hostB", [
        Deno.execPath(),
        "run",
        "-A",
        fixture,
        JSON.stringify({
          scenario: "labClient",
          host: LAB.srv,
          port: LAB.stunPort,
          transport,
          peer: { hostname: LAB.pub, port },
          count,
        }),
      ], { timeoutMs: 60_000 });
      equal(client.code, 0, client.stderr);
      const r = JSON.parse(client.stdout.trim().split("\n").at(-1)!);
      for (let chunk; !(chunk = await lines.read()).done;) out += chunk.value;
      equal((await peer.status).code, 0);
      const heard = JSON.parse(out.trim().split("\n").at(-1)!).heard;

      match(r.relayed, new RegExp(`^udp://${LAB.srv.replaceAll(".", "\\.")}:\\d+$`), transport);
      match(
        r.mapped,
        new RegExp(`^udp://${LAB.gwB.replaceAll(".", "\\.")}:\\d+$`),
        `${transport}: the server saw gwB's WAN`,
      );
      eql(heard.map((h: { from: string }) => h.from), Array(count).fill(r.relayed), `${transport}: from the relay`);
      eql(r.got.map((g: { text: string }) => g.text), heard.map((h: { text: string }) => `ack:${h.text}`));
      eql(r.got.map((g: { from: string }) => g.from), Array(count).fill(`udp://${LAB.pub}:${port}`));
    }
  },
});
