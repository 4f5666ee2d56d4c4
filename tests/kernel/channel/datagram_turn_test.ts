import { equal, ok } from "node:assert/strict";
import { coturnUnavailable, startCoturn } from "../../transport/turn/_coturn.ts";

// The endpoints must live where coturn's 127.0.0.1 is: the scenario runs as a fixture inside
// coturn's network namespace and prints what it saw.
const unavailable = await coturnUnavailable();
if (unavailable) console.log(`datagram over TURN tests skipped: ${unavailable}`);
const fixture = new URL("./_datagram_turn_fixture.ts", import.meta.url);

Deno.test({
  name: "datagram over TURN: a handshake and 100 KB each way between an endpoint on a relay and one on a plain socket",
  ignore: unavailable !== null,
  fn: async (t) => {
    const coturn = await startCoturn();
    try {
      for (const transport of ["udp", "tcp"]) {
        await t.step(`the relayed endpoint reaches coturn over ${transport}`, async () => {
          const r = await coturn.run(fixture, { port: coturn.port, transport });
          equal(r.localAddrA, r.relayed, "the endpoint's address is the relayed one");
          equal(r.bSawA, r.relayed, "the plain endpoint's session sees the relayed address");
          equal(r.aSawB, r.b);
          ok(r.thereIntact, "100 KB reached the plain endpoint intact");
          ok(r.backIntact, "100 KB reached the relayed endpoint intact");
          equal(r.stats.channelBinds, 1, "a channel was bound after the first packets");
          ok(r.stats.channelDataSent > 20, `packets went as ChannelData once bound (${r.stats.channelDataSent})`);
          ok(
            r.stats.channelDataReceived > 20,
            `packets came as ChannelData once bound (${r.stats.channelDataReceived})`,
          );
          equal(r.stats.malformed, 0);
        });
      }
    } catch (error) {
      console.log(`--- coturn log (tail) ---\n${(await coturn.log()).split("\n").slice(-30).join("\n")}`);
      throw error;
    } finally {
      await coturn.stop();
    }
  },
});
