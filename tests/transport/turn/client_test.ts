import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { type Coturn, coturnUnavailable, startCoturn } from "./_coturn.ts";

// The allocation and its peers must live where coturn's 127.0.0.1 is, so each scenario runs as
// `_fixture.ts` inside coturn's network namespace and prints what it saw as JSON.
const unavailable = await coturnUnavailable();
if (unavailable) console.log(`turn client tests against coturn skipped: ${unavailable}`);
const fixture = new URL("./_fixture.ts", import.meta.url);

async function withCoturn(extraConfig: string[], fn: (coturn: Coturn) => Promise<void>): Promise<void> {
  const coturn = await startCoturn(extraConfig);
  try {
    await fn(coturn);
  } catch (error) {
    const log = await coturn.log();
    throw new Error(`${error}\n--- coturn log (tail) ---\n${log.split("\n").slice(-30).join("\n")}`, { cause: error });
  } finally {
    await coturn.stop();
  }
}

Deno.test({
  name: "turn client against coturn",
  ignore: unavailable !== null,
  fn: (t) =>
    withCoturn([], async (coturn) => {
      const run = (scenario: string, extra: Record<string, unknown> = {}) =>
        coturn.run(fixture, { scenario, port: coturn.port, ...extra });

      for (const transport of ["udp", "tcp"]) {
        const name = `over ${transport}: a peer hears the client from the relayed address, its answers reach the ` +
          `client's route from the peer's address, Send indications give way to ChannelData after 3 packets`;
        await t.step(name, async () => {
          const r = await run("relay", { transport });
          const label = transport;
          match(r.url, /^udp:\/\/127\.0\.0\.1:(49[12]\d\d)$/, label);
          equal(r.lifetime, 600, label);
          eql(r.mapped.hostname, "127.0.0.1", label);
          eql(r.peerHeard.map((h: { text: string }) => h.text), [
            "indication 0",
            "indication 1",
            "indication 2",
            "channel 0",
            "channel 1",
            "channel 2",
          ], label);
          ok(
            r.peerHeard.every((h: { from: string }) => h.from === r.url),
            `${label}: every packet from the relayed address`,
          );
          eql(
            r.clientGot.map((g: { text: string }) => g.text),
            r.peerHeard.map((h: { text: string }) => `ack:${h.text}`),
          );
          ok(r.clientGot.every((g: { from: string }) => g.from === r.peer), `${label}: answers come from the peer`);
          eql(r.channels, [r.peer], label);
          equal(r.stats.sendIndications, 3, label);
          equal(r.stats.channelDataSent, 3, label);
          equal(r.stats.channelBinds, 1, label);
          equal(r.stats.permissions, 1, label);
          ok(r.stats.dataIndications >= 2, `${label}: the first answers came as Data indications`);
          ok(r.stats.channelDataReceived >= 3, `${label}: the last answers came as ChannelData`);
          equal(r.stats.dataIndications + r.stats.channelDataReceived, 6, label);
          equal(r.stats.ignored + r.stats.malformed + r.stats.dropped, 0, label);
        });
      }

      await t.step("coturn's own echo peer (turnutils_peer) gets what we relay and its echo comes back", async () => {
        const peer = { hostname: "127.0.0.1", port: 3480 };
        coturn.spawn(["turnutils_peer", "-L", peer.hostname, "-p", String(peer.port)]);
        for (const transport of ["udp", "tcp"]) {
          let r;
          for (let attempt = 0;; attempt++) {
            // turnutils_peer takes a moment to bind; until then the first packet is lost and the fixture times out.
            try {
              r = await run("externalPeer", { transport, peer, count: 6 });
              break;
            } catch (error) {
              if (attempt === 5) throw error;
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
          }
          eql(r.got, r.sent.map((text: string) => `${text} from udp://127.0.0.1:3480`), transport);
          equal(r.stats.channelBinds, 1, transport);
        }
      });

      await t.step("20 sends at once to a new peer share one CreatePermission and one ChannelBind", async () => {
        const r = await run("burst");
        equal(r.got, 20);
        equal(r.stats.permissions, 1);
        equal(r.stats.channelBinds, 1);
        equal(r.stats.requests, 4, "Allocate twice (401 first), CreatePermission, ChannelBind");
      });

      await t.step("a wrong password is a TurnError 401 within 3 s, over UDP and TCP", async () => {
        for (const transport of ["udp", "tcp"]) {
          const r = await run("wrongPassword", { transport });
          equal(r.error?.name, "TurnError", `${transport}: a wrong password is a TurnError`);
          equal(r.error.code, 401, transport);
          match(r.error.message, /refused the username or password/, transport);
          ok(r.ms < 3_000, `${transport}: the refusal comes within 3 s, took ${r.ms} ms`);
        }
      });

      await t.step("refresh() asks for a new lifetime and gets one", async () => {
        const refreshed = await run("refresh");
        equal(refreshed.granted, 600, "coturn grants at least its default lifetime (RFC 8656 section 7.2)");
        equal(refreshed.refreshed, 600);
        equal(refreshed.stats.refreshes, 1);
      });

      await t.step("close() deletes the allocation on the server and leaves a shared socket open", async () => {
        const closed = await run("closeDeletes");
        equal(closed.whileAlive?.code, 437, "one 5-tuple, one allocation: a second Allocate is refused 437");
        ok(closed.whileAliveMs < 3_000, "the 437 (which coturn sends without integrity) is taken at once");
        equal(closed.refreshedWhileAlive, 600);
        equal(closed.sendAfterClose?.name, "TransportError");
        equal(closed.probe, 437, "after close() coturn no longer knows the allocation");
        equal(closed.socketClosed, false, "close() leaves a shared socket open");
        ok(/refreshed, .*lifetime=0/.test(await coturn.log()), "coturn logged the Refresh with LIFETIME 0");
      });

      await t.step("on a shared socket the allocation claims only its own traffic", async () => {
        const shared = await run("shared");
        eql(shared.direct, [`direct from ${shared.peer}`], "a peer's direct datagram reaches the socket's own route");
        eql(shared.stun, [{ hostname: "127.0.0.1", port: Number(shared.socket.split(":").at(-1)) }]);
        eql(shared.relayed, [`ack:relayed from ${shared.peer}`]);
        equal(shared.unrouted, 0);
        equal(shared.ignored, 0, "the Binding response from the TURN server was not the allocation's to claim");
      });
    }),
});

Deno.test({
  name: "turn client against coturn: refreshes itself halfway to expiry, through a stale nonce (438)",
  ignore: unavailable !== null,
  fn: () =>
    withCoturn(["max-allocate-lifetime=10", "stale-nonce=3"], async (coturn) => {
      for (const transport of ["udp", "tcp"]) {
        const r = await coturn.run(fixture, { scenario: "autoRefresh", port: coturn.port, transport });
        equal(r.granted, 10, `${transport}: coturn capped the lifetime at 10 s`);
        ok(r.stats.refreshes >= 1, transport);
        ok(r.stats.requests >= 5, `${transport}: Allocate twice, Refresh after a 438, CreatePermission`);
        eql(r.got, ["ack:still here"], `${transport}: the allocation still relays after the refresh`);
        equal(r.closed, false, transport);
      }
    }),
});
