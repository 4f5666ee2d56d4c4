/**
 * `nzcore`, the command line: `init` and `start` run the node in this
 * process; every other command talks to the running node over the Unix
 * socket in its data directory.
 *
 * @module
 */

import { base64 } from "@scure/base";
import { resolve } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { NodeClient, NoNodeError } from "./kernel/cli/client.ts";
import { renderQr } from "./kernel/cli/qr.ts";
import { INTRODUCTION_POLICIES, type IntroductionPolicy } from "./kernel/discovery/introduction.ts";
import { startDaemon } from "./kernel/daemon.ts";
import { LAN_MODES, type LanMode } from "./kernel/discovery/lan.ts";
import {
  DEFAULT_API,
  DEFAULT_LISTEN,
  ENV_PASSPHRASE,
  parseHostPort,
  passphraseFromEnv,
  resolveDataDir,
} from "./kernel/node/config.ts";
import { Node, VERSION } from "./kernel/node/node.ts";
import { parseTurnUrl } from "./kernel/node/traversal.ts";
import type { DhtState, FoundService } from "./kernel/node/dht_service.ts";
import { PEER_POLICIES, type PeerPolicy } from "./kernel/peers/manager.ts";

interface Globals {
  dataDir?: string;
}

function dataDirOf(command: Command): string {
  return resolveDataDir((command.optsWithGlobals() as Globals).dataDir);
}

async function withClient<T>(command: Command, fn: (client: NodeClient) => Promise<T>): Promise<T> {
  using client = await NodeClient.connect(dataDirOf(command));
  return await fn(client);
}

function print(value: unknown, json: boolean, human: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : human());
}

interface ApprovalView {
  id: string;
  request: { principal: { type: string; id: string }; action: string; resource: { type: string; id: string } };
  risk: string;
  reasons: string[];
  status: string;
  expires: number;
  decidedBy?: string;
}

function formatApproval(a: ApprovalView): string {
  const who = `${a.request.principal.type}:${a.request.principal.id}`;
  const what = `${a.request.action} ${a.request.resource.type}:${a.request.resource.id}`;
  const when = a.status === "pending"
    ? `expires in ${formatAge(Math.max(0, a.expires - Date.now()))}`
    : `by ${a.decidedBy ?? "?"}`;
  return `${a.id}  ${a.status.padEnd(8)} ${a.risk.padEnd(8)} ${who} ${what} (${when}): ${a.reasons.join("; ")}`;
}

interface GrantView {
  principal: { type: string; id: string };
  capabilities: string[];
}

const formatGrant = (g: GrantView) => `${g.principal.type}:${g.principal.id}  ${g.capabilities.join(" ") || "(none)"}`;

/** `type:id` → a principal; the ID may itself hold colons. */
function parsePrincipal(text: string): { type: string; id: string } {
  const at = text.indexOf(":");
  if (at <= 0 || at === text.length - 1) {
    throw new RangeError(`Invalid principal "${text}": expected TYPE:ID, e.g. service:backup`);
  }
  return { type: text.slice(0, at), id: text.slice(at + 1) };
}

function passphraseOption(): Option {
  return new Option("--passphrase-env <NAME>", "environment variable holding the passphrase (must start with NZCORE_)");
}

function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

interface IdentityView {
  name: string;
  nodeId: string;
  did: string;
  active: boolean;
}

interface SessionView {
  nodeId: string;
  did: string;
  direction: string;
  address: string;
  path?: { kind: string; transport: string; remoteAddr: string; via?: string; rttMs: number | null };
}

interface ReachabilityView {
  udp: string | null;
  publicAddresses: string[];
  natType: string;
  mapping: string;
  filtering: string;
  stun: { server: string; mapped?: string; error?: string; rttMs?: number }[];
  portMappings: {
    protocol: string;
    internalPort: number;
    externalAddress: string;
    externalPort: number;
    method: string;
  }[];
  servingStun: boolean;
  checkedAt: number | null;
  turn: { server: string; relayed: string | null; error?: string } | null;
}

/** `direct udp 12.3 ms` or `relayed via 3f2a... (relay)`. */
function describePath(path: SessionView["path"]): string {
  if (!path) return "";
  const rtt = path.rttMs === null ? "" : ` ${path.rttMs.toFixed(1)} ms`;
  const via = path.via ? ` via ${path.via.slice(0, 16)}` : "";
  return `${path.kind} ${path.transport}${via}${rtt}`;
}

function reachabilityLines(r: ReachabilityView): string[] {
  const lines = [
    `public:      ${r.publicAddresses.join(" ") || "(none known)"}`,
    `nat:         ${r.natType} (mapping ${r.mapping}, filtering ${r.filtering})${
      r.checkedAt ? "" : "  (not checked yet)"
    }`,
  ];
  for (const o of r.stun) lines.push(`  stun ${o.server}: ${o.mapped ?? `no answer (${o.error})`}`);
  if (r.turn) {
    lines.push(
      `  turn ${r.turn.server}: ${r.turn.relayed ?? `no allocation${r.turn.error ? ` (${r.turn.error})` : ""}`}`,
    );
  }
  for (const m of r.portMappings) {
    lines.push(`  mapped ${m.protocol} ${m.internalPort} -> ${m.externalAddress}:${m.externalPort} (${m.method})`);
  }
  return lines;
}

interface IntroductionView {
  to: string;
  peer: string;
  addresses: string[];
  status: string;
  accepted: boolean;
  reason: string;
}

interface TokenView {
  id: string;
  name: string;
  scope?: string;
  created: number;
  expires?: number;
  revoked?: number;
  token?: string;
}

interface ServiceView {
  name: string;
  version: string;
  entry: string;
  dependencies: string[];
  state: string;
  reason: string;
  restarts: number;
  lastError?: string;
  health: { status: string };
}

function formatService(s: ServiceView): string {
  const deps = s.dependencies.length ? `  after ${s.dependencies.join(",")}` : "";
  const error = s.lastError ? `\n    last error: ${s.lastError}` : "";
  return `${s.name.padEnd(16)} ${
    s.state.padEnd(9)
  } restarts ${s.restarts}  health ${s.health.status}  ${s.version} ${s.entry}${deps}\n    ${s.reason}${error}`;
}

/** Builds the CLI program. */
export function buildProgram(): Command {
  const program = new Command("nzcore")
    .description("NewZoneCore: a self-sovereign P2P edge node")
    .version(VERSION)
    .option("--data-dir <DIR>", `data directory (default: $NZCORE_HOME, else ~/.local/share/nzcore)`)
    .showHelpAfterError()
    .exitOverride();

  program.command("init")
    .description("create the data directory, master key and first identity, then exit")
    .addOption(passphraseOption())
    .option("--name <NAME>", "name of the first identity", "default")
    .action(async (opts: { passphraseEnv?: string; name: string }, command: Command) => {
      const dataDir = dataDirOf(command);
      const passphrase = opts.passphraseEnv ? passphraseFromEnv(opts.passphraseEnv) : undefined;
      const node = await Node.open({ dataDir, passphrase, identityName: opts.name });
      const { did, nodeId } = node.identity;
      const created = node.created;
      await node.close();
      console.log(created ? "Created a new node." : "The node exists already.");
      console.log(`  identity: ${did}\n  node id:  ${nodeId}\n  data:     ${dataDir}`);
    });

  program.command("start")
    .description("run the node in the foreground until SIGINT or SIGTERM")
    .addOption(passphraseOption())
    .option("--api <HOST:PORT>", "TCP address of the HTTP API", DEFAULT_API)
    .option("--no-api", "serve the API on the Unix socket only")
    .option(
      "--listen <ADDRESS>",
      `address for other nodes, repeatable: tcp://HOST:PORT, udp://HOST:PORT or ws://HOST:PORT/PATH (default ${
        DEFAULT_LISTEN.join(" ")
      })`,
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option("--no-listen", "accept no connections from other nodes (dialing out still works)")
    .addOption(
      new Option(
        "--lan <MODE>",
        "find nodes on the local network (mDNS / DNS-SD) and dial: known (those in the address book), any, or off " +
          "(list them only)",
      ).choices([...LAN_MODES]).default("known"),
    )
    .option("--no-lan", "no LAN discovery: the node sends no mDNS at all")
    .option("--lan-interface <NAME>", "the interface for LAN discovery, a name or an IPv4 address (default all)")
    .addOption(
      new Option("--peer-policy <POLICY>", "which peers to accept: any, tofu (trust on first use) or known")
        .choices([...PEER_POLICIES]).default("tofu"),
    )
    .option(
      "--stun <HOST:PORT>",
      "a STUN server to learn the node's public address from, repeatable (connected UDP peers are asked too)",
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option("--port-mapping", "ask the router to forward the listen ports (PCP, NAT-PMP, UPnP IGD)")
    .option("--relay", "relay sessions between peers that cannot reach each other directly (for public nodes)")
    .option(
      "--turn <URL>",
      "a TURN server to allocate a relayed address on (turn://USER:PASSWORD@IP:PORT[?transport=tcp]); peers behind " +
        "NATs that defeat hole punching reach the node there",
    )
    .option(
      "--bootstrap <ADDRESS>",
      "a DHT node to join the DHT through, repeatable: udp://HOST:PORT (connected UDP peers are used too)",
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option("--no-dht", "take no part in the DHT")
    .option("--dht-read-only", "use the DHT as a client only: never stored at, never in others' routing tables")
    .addOption(
      new Option(
        "--introductions <POLICY>",
        "whose peer introductions to follow by dialing the introduced node: trusted (known introducer or node), any, off",
      ).choices([...INTRODUCTION_POLICIES]).default("trusted"),
    )
    .option("--name <NAME>", "name of the first identity, on first start", "default")
    .action(async (
      opts: {
        introductions: IntroductionPolicy;
        bootstrap?: string[];
        dht?: boolean;
        dhtReadOnly?: boolean;
        passphraseEnv?: string;
        api: string | false;
        listen?: string[] | false;
        peerPolicy: PeerPolicy;
        lan: LanMode | false;
        lanInterface?: string;
        stun?: string[];
        portMapping?: boolean;
        relay?: boolean;
        turn?: string;
        name: string;
      },
      command: Command,
    ) => {
      const dataDir = dataDirOf(command);
      const passphrase = opts.passphraseEnv ? passphraseFromEnv(opts.passphraseEnv) : undefined;
      const api = opts.api === false ? null : parseHostPort(opts.api);
      const listen = opts.listen === false ? [] : opts.listen ?? DEFAULT_LISTEN;
      const daemon = await startDaemon({
        dataDir,
        passphrase,
        api,
        listen,
        peerPolicy: opts.peerPolicy,
        lan: opts.lan === false ? null : { mode: opts.lan, interface: opts.lanInterface },
        introductions: opts.introductions,
        identityName: opts.name,
        dht: { enabled: opts.dht !== false, bootstrap: opts.bootstrap ?? [], readOnly: opts.dhtReadOnly ?? false },
        reachability: { stunServers: opts.stun ?? [], portMapping: opts.portMapping ?? false },
        traversal: {
          relay: { enabled: opts.relay ?? false },
          ...(opts.turn ? { turn: parseTurnUrl(opts.turn) } : {}),
        },
      });
      const { node } = daemon;
      console.log(`nzcore ${VERSION} ${node.created ? "created a new node" : "started"}`);
      console.log(`  identity: ${node.identity.did}`);
      console.log(`  node id:  ${node.identity.nodeId}`);
      console.log(
        `  data:     ${dataDir} (master key sealed by ${node.keyMode === "keyfile" ? "key file" : "passphrase"})`,
      );
      if (daemon.api.tcp) console.log(`  api:      http://${daemon.api.tcp}/v1 (bearer token required)`);
      console.log(`  socket:   ${daemon.api.socket}`);
      for (const address of node.peers.listening) console.log(`  listen:   ${address}`);
      if (daemon.lan) console.log(`  lan:      mDNS _nzcore._udp, mode ${daemon.lan.mode}`);
      console.log(`  admin:    token in ${daemon.adminTokenPath}`);
      console.log("ready");
      await daemon.finished;
      console.log("stopped");
      // Connections that outlived the grace period must not keep the process alive.
      Deno.exit(0);
    });

  program.command("state")
    .description("show the running node's state")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const s = await client.request<{
          version: string;
          pid: number;
          uptimeMs: number;
          identity: IdentityView;
          identities: number;
          api: { tcp: string | null; socket: string | null };
          listen: string[];
          sessions: number;
          permissions: Record<string, string>;
          storage: { path: string; bytes: number; keyMode: string; logEntries: number };
          memory: { rss: number };
          reachability: ReachabilityView;
        }>("GET", "/v1/state");
        print(s, !!opts.json, () =>
          [
            `nzcore ${s.version} (pid ${s.pid}, up ${formatAge(s.uptimeMs)})`,
            `identity:    ${s.identity.name} ${s.identity.did}`,
            `node id:     ${s.identity.nodeId}`,
            `identities:  ${s.identities}`,
            `api:         ${s.api.tcp ? `http://${s.api.tcp}` : "(no TCP)"}  ${s.api.socket ?? ""}`,
            `listen:      ${s.listen.join(" ") || "(nowhere)"}  (${s.sessions} sessions)`,
            ...reachabilityLines(s.reachability),
            `storage:     ${s.storage.path}, ${
              (s.storage.bytes / 1024).toFixed(0)
            } KiB, key ${s.storage.keyMode}, ${s.storage.logEntries} log entries`,
            `memory:      ${(s.memory.rss / 2 ** 20).toFixed(1)} MiB resident`,
            `permissions: ${Object.entries(s.permissions).map(([k, v]) => `${k}=${v}`).join(" ")}`,
          ].join("\n"));
      });
    });

  const identity = program.command("identity").description("manage the node's identities (profiles)");
  identity.command("list")
    .description("list identities")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const list = await client.request<IdentityView[]>("GET", "/v1/identities");
        print(
          list,
          !!opts.json,
          () =>
            list.map((i) => `${i.active ? "*" : " "} ${i.name.padEnd(16)} ${i.nodeId.slice(0, 16)}  ${i.did}`).join(
              "\n",
            ),
        );
      });
    });
  identity.command("create <name>")
    .description("create an identity")
    .option("--activate", "make it the active identity")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { activate?: boolean; json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const created = await client.request<IdentityView>("POST", "/v1/identities", {
          name,
          activate: opts.activate,
        });
        print(created, !!opts.json, () => `Created identity ${created.name}: ${created.did}`);
      });
    });
  identity.command("switch <ref>")
    .description("make an identity (name, did, node id or prefix) the active one")
    .action(async (ref: string, _opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        const active = await client.request<IdentityView>("POST", `/v1/identities/${encodeURIComponent(ref)}/activate`);
        console.log(`Active identity: ${active.name} ${active.did}`);
      });
    });
  identity.command("export <ref>")
    .description("export an identity to a file sealed by a passphrase")
    .requiredOption("--out <FILE>", "file to write (created with mode 0600)")
    .addOption(passphraseOption().default(ENV_PASSPHRASE))
    .action(async (ref: string, opts: { out: string; passphraseEnv: string }, command: Command) => {
      const passphrase = passphraseFromEnv(opts.passphraseEnv);
      await withClient(command, async (client) => {
        const result = await client.request<{ did: string; file: string }>(
          "POST",
          `/v1/identities/${encodeURIComponent(ref)}/export`,
          { passphrase },
        );
        await Deno.writeTextFile(opts.out, result.file, { mode: 0o600, createNew: true });
        console.log(`Exported ${result.did} to ${opts.out}`);
      });
    });
  identity.command("import <file>")
    .description("import an identity from an export file")
    .addOption(passphraseOption().default(ENV_PASSPHRASE))
    .option("--name <NAME>", "name it differently on this node")
    .option("--activate", "make it the active identity")
    .action(
      async (file: string, opts: { passphraseEnv: string; name?: string; activate?: boolean }, command: Command) => {
        const passphrase = passphraseFromEnv(opts.passphraseEnv);
        const text = await Deno.readTextFile(file);
        await withClient(command, async (client) => {
          const imported = await client.request<IdentityView>("POST", "/v1/identities/import", {
            file: text,
            passphrase,
            name: opts.name,
            activate: opts.activate,
          });
          console.log(`Imported identity ${imported.name}: ${imported.did}`);
        });
      },
    );

  identity.command("uri")
    .description("print the node's nz:// URI: its DID and the addresses other nodes may reach it at")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const u = await client.request<{ uri: string }>("GET", "/v1/identity/uri");
        print(u, !!opts.json, () => u.uri);
      });
    });
  identity.command("qr")
    .description("print the node's nz:// URI as a QR code to scan (nzcore connect nz://... dials it)")
    .option("--uri-only", "print the URI alone, without the QR code")
    .option("--invert", "for a terminal with a light background")
    .action(async (opts: { uriOnly?: boolean; invert?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const { uri } = await client.request<{ uri: string }>("GET", "/v1/identity/uri");
        console.log(opts.uriOnly ? uri : `${renderQr(uri, { invert: opts.invert })}\n${uri}`);
      });
    });

  const token = program.command("token").description("manage API tokens");
  token.command("create <name>")
    .description("create an API token (shown once)")
    .option("--expires <SECONDS>", "lifetime in seconds", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Invalid --expires "${v}": expected whole seconds`);
      return n;
    })
    .option("--agent", "an agent token: it may use the MCP endpoint /v1/mcp only")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { expires?: number; agent?: boolean; json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const created = await client.request<TokenView>("POST", "/v1/tokens", {
          name,
          expiresIn: opts.expires,
          scope: opts.agent ? "agent" : undefined,
        });
        print(
          created,
          !!opts.json,
          () =>
            `${created.token}\n(${created.scope ?? "admin"} token ${created.id} "${created.name}"; shown only once)`,
        );
      });
    });
  token.command("list")
    .description("list API tokens")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const list = await client.request<TokenView[]>("GET", "/v1/tokens");
        print(list, !!opts.json, () =>
          list.map((t) => {
            const status = t.revoked
              ? "revoked"
              : t.expires && t.expires <= Date.now()
              ? "expired"
              : t.expires
              ? `expires ${new Date(t.expires).toISOString()}`
              : "active";
            return `${t.id}  ${t.name.padEnd(20)} ${(t.scope ?? "admin").padEnd(5)}  ${status}`;
          }).join("\n"));
      });
    });
  token.command("revoke <id>")
    .description("revoke an API token")
    .action(async (id: string, _opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        await client.request("DELETE", `/v1/tokens/${encodeURIComponent(id)}`);
        console.log(`Revoked token ${id}`);
      });
    });

  program.command("events")
    .description("follow the node's live events until interrupted")
    .option("--json", "print each event as one JSON line")
    .option("--types <PREFIXES>", "comma-separated type prefixes to show")
    .action(async (opts: { json?: boolean; types?: string }, command: Command) => {
      await withClient(command, async (client) => {
        const query = opts.types ? `?types=${encodeURIComponent(opts.types)}` : "";
        const response = await client.fetch(`/v1/events${query}`);
        if (!response.ok || !response.body) throw new Error(`The node refused the event stream: ${response.status}`);
        let buffer = "";
        for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
          buffer += chunk;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
            if (!data) continue;
            const event = JSON.parse(data);
            if (opts.json) console.log(JSON.stringify(event));
            else console.log(`${new Date(event.time).toISOString()} ${event.type} ${JSON.stringify(event.data)}`);
          }
        }
      });
    });

  program.command("connect <target>")
    .description(
      "dial a node at an address (tcp://HOST:PORT, udp://HOST:PORT, ws://HOST:PORT/PATH) and authenticate it; given " +
        "a DID or node ID, find its addresses in the DHT; with --via, reach a node behind a NAT through a connected " +
        "node: hole punching, else relayed",
    )
    .option("--peer <ID>", "the node ID or DID expected at the address; refuse another")
    .option("--via <NODE>", "a connected node that introduces (rendezvous) and, if need be, relays")
    .option("--once", "do not dial the peer again after a lost session or at start")
    .option("--json", "print JSON")
    .action(
      async (
        target: string,
        opts: { peer?: string; via?: string; once?: boolean; json?: boolean },
        command: Command,
      ) => {
        await withClient(command, async (client) => {
          // A DID or node ID without --via: the node finds its addresses in the DHT.
          const body = opts.via
            ? { peer: target, via: opts.via }
            : target.includes("://")
            ? { address: target, peer: opts.peer, autoConnect: !opts.once }
            : { peer: target, autoConnect: !opts.once };
          const s = await client.request<
            SessionView & { method?: string; elapsedMs?: number; punchError?: string }
          >("POST", "/v1/peers", body);
          print(s, !!opts.json, () => {
            const lines = [`Connected to ${s.did}`, `  node id: ${s.nodeId}`, `  address: ${s.address}`];
            if (s.path) lines.push(`  path:    ${describePath(s.path)}`);
            if (s.elapsedMs !== undefined) lines.push(`  took:    ${s.elapsedMs.toFixed(0)} ms`);
            if (s.punchError) lines.push(`  no direct path yet: ${s.punchError}`);
            return lines.join("\n");
          });
        });
      },
    );

  program.command("peers")
    .description("list sessions with other nodes, and known peers")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const p = await client.request<{
          policy: string;
          listening: string[];
          sessions: SessionView[];
          known: (SessionView & { addresses: string[]; lastSeen: number; autoConnect: boolean; connected: boolean })[];
        }>("GET", "/v1/peers");
        print(p, !!opts.json, () => {
          const lines = [`listening: ${p.listening.join(" ") || "(nowhere)"}   policy: ${p.policy}`];
          lines.push(p.sessions.length ? "sessions:" : "sessions: none");
          for (const s of p.sessions) {
            lines.push(
              `  ${s.nodeId.slice(0, 16)}  ${s.direction.padEnd(8)} ${s.path?.remoteAddr ?? s.address}  ${
                describePath(s.path)
              }  ${s.did}`,
            );
          }
          const offline = p.known.filter((k) => !k.connected);
          if (offline.length) lines.push("known, not connected:");
          for (const k of offline) {
            const auto = k.autoConnect ? " (redialing)" : "";
            lines.push(`  ${k.nodeId.slice(0, 16)}  ${k.addresses[0] ?? "-"}  ${k.did}${auto}`);
          }
          return lines.join("\n");
        });
      });
    });

  program.command("lan")
    .description("list the nodes found on the local network (mDNS / DNS-SD)")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const l = await client.request<{
          enabled: boolean;
          mode: string | null;
          instance: string | null;
          peers: { nodeId: string; did: string; addresses: string[]; known: boolean; dial: string; error?: string }[];
        }>("GET", "/v1/lan");
        print(l, !!opts.json, () => {
          if (!l.enabled) return "LAN discovery is off (start the node without --no-lan)";
          const lines = [`mode: ${l.mode}   announced as: ${l.instance ?? "(not announced)"}`];
          lines.push(l.peers.length ? "found:" : "found: none");
          for (const p of l.peers) {
            const notes = (p.known ? "  known" : "") + (p.error ? ` (${p.error})` : "");
            lines.push(`  ${p.nodeId.slice(0, 16)}  ${p.dial.padEnd(9)} ${p.addresses[0] ?? "-"}  ${p.did}${notes}`);
          }
          return lines.join("\n");
        });
      });
    });

  program.command("send <peer> <message>")
    .description("send a message to a connected peer (its DID, node ID or a unique prefix); @FILE sends a file")
    .action(async (peer: string, message: string, _opts: unknown, command: Command) => {
      const body = message.startsWith("@")
        ? { base64: base64.encode(await Deno.readFile(message.slice(1))) }
        : { text: message };
      await withClient(command, async (client) => {
        const sent = await client.request<{ nodeId: string; bytes: number }>(
          "POST",
          `/v1/peers/${encodeURIComponent(peer)}/messages`,
          body,
        );
        console.log(`Sent ${sent.bytes} bytes to ${sent.nodeId}`);
      });
    });

  program.command("introduce <to> <peer>")
    .description(
      "introduce a known peer to a connected one: it gets a signed introduction (identity and addresses) and, if its " +
        "policy follows it, dials the peer",
    )
    .option("--json", "print JSON")
    .action(async (to: string, peer: string, opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const r = await client.request<IntroductionView>("POST", "/v1/peers/introduce", { to, peer });
        print(r, !!opts.json, () => {
          const what = `${r.peer.slice(0, 16)} (${r.addresses.length} addresses) to ${r.to.slice(0, 16)}`;
          const why = r.reason ? `: ${r.reason}` : "";
          return r.accepted
            ? `Introduced ${what}: ${r.status}${why}`
            : `Introduction of ${what} refused (${r.status})${why}`;
        });
        if (!r.accepted) Deno.exitCode = 1;
      });
    });

  program.command("disconnect <peer>")
    .description("close the session with a peer and stop redialing it")
    .action(async (peer: string, _opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        const { nodeId } = await client.request<{ nodeId: string }>("DELETE", `/v1/peers/${encodeURIComponent(peer)}`);
        console.log(`Disconnected ${nodeId}`);
      });
    });

  const services = program.command("services").description("the services the node supervises");
  services.command("list")
    .description("list services in start order with their state, restarts, last error and health")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const list = await client.request<ServiceView[]>("GET", "/v1/services");
        print(list, !!opts.json, () => list.map(formatService).join("\n") || "no services");
      });
    });
  for (
    const [verb, description] of [
      ["start", "start a service and its stopped dependencies (a failed one gets a fresh restart budget)"],
      ["stop", "stop a service, its running dependents first"],
      ["restart", "stop a service (dependents first), then start it and those dependents"],
    ] as const
  ) {
    services.command(`${verb} <name>`)
      .description(description)
      .option("--json", "print JSON")
      .action(async (name: string, opts: { json?: boolean }, command: Command) => {
        await withClient(command, async (client) => {
          const s = await client.request<ServiceView>("POST", `/v1/services/${encodeURIComponent(name)}/${verb}`);
          print(s, !!opts.json, () => formatService(s));
        });
      });
  }

  const approvals = program.command("approvals").description("requests waiting for an operator's approval");
  approvals.command("list")
    .description("list pending approvals (oldest first), then recently settled ones")
    .option("--status <STATUS>", "only approvals in this state: pending, approved, denied or expired")
    .option("--json", "print JSON")
    .action(async (opts: { status?: string; json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const query = opts.status ? `?status=${encodeURIComponent(opts.status)}` : "";
        const list = await client.request<ApprovalView[]>("GET", `/v1/approvals${query}`);
        print(list, !!opts.json, () => list.map(formatApproval).join("\n") || "no approvals");
      });
    });
  for (const verb of ["approve", "deny"] as const) {
    approvals.command(`${verb} <id>`)
      .description(verb === "approve" ? "approve a pending request" : "deny a pending request")
      .option("--note <TEXT>", "a note recorded with the decision")
      .option("--json", "print JSON")
      .action(async (id: string, opts: { note?: string; json?: boolean }, command: Command) => {
        await withClient(command, async (client) => {
          const body = opts.note === undefined ? {} : { note: opts.note };
          const a = await client.request<ApprovalView>(
            "POST",
            `/v1/approvals/${encodeURIComponent(id)}/${verb}`,
            body,
          );
          print(a, !!opts.json, () => formatApproval(a));
        });
      });
  }

  const policy = program.command("policy").description("the policy gate's Cedar policy set");
  policy.command("show")
    .description("print the active policy set (with --json: its text, policy IDs and the default set's IDs)")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const set = await client.request<{ policies: string; ids: string[] }>("GET", "/v1/policy");
        print(set, !!opts.json, () => `// policies: ${set.ids.join(", ")}\n${set.policies.trimEnd()}`);
      });
    });
  policy.command("set <file>")
    .description("replace the policy set with the Cedar policies in a file (a set that does not load is refused)")
    .action(async (file: string, _opts: unknown, command: Command) => {
      const text = await Deno.readTextFile(file);
      await withClient(command, async (client) => {
        const loaded = await client.request<{ ids: string[] }>("PUT", "/v1/policy", { policies: text });
        console.log(`Loaded ${loaded.ids.length} policies: ${loaded.ids.join(", ")}`);
      });
    });
  policy.command("reset")
    .description("return to the default policy set")
    .action(async (_opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        const loaded = await client.request<{ ids: string[] }>("POST", "/v1/policy/reset");
        console.log(`Loaded the default policies: ${loaded.ids.join(", ")}`);
      });
    });

  for (const verb of ["grant", "revoke"] as const) {
    program.command(`${verb} <principal> <capability>`)
      .description(
        verb === "grant"
          ? "grant a capability (an action, AREA.*, * or role:NAME) to a principal TYPE:ID"
          : "revoke a capability from a principal TYPE:ID",
      )
      .option("--json", "print JSON")
      .action(async (principal: string, capability: string, opts: { json?: boolean }, command: Command) => {
        const body = { principal: parsePrincipal(principal), capability };
        await withClient(command, async (client) => {
          const g = await client.request<GrantView>(verb === "grant" ? "POST" : "DELETE", "/v1/capabilities", body);
          print(g, !!opts.json, () => formatGrant(g));
        });
      });
  }
  program.command("capabilities")
    .description("list every principal's capabilities")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const list = await client.request<GrantView[]>("GET", "/v1/capabilities");
        print(list, !!opts.json, () => list.map(formatGrant).join("\n") || "no grants");
      });
    });

  program.command("log")
    .description("the node's signed event log")
    .command("verify")
    .description("verify the hash chain and signatures of the event log")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const report = await client.request<{ ok: boolean; entries: number; checkpoints: number; problems: string[] }>(
          "GET",
          "/v1/log/verify",
        );
        print(
          report,
          !!opts.json,
          () =>
            report.ok
              ? `The log verifies: ${report.entries} entries, ${report.checkpoints} signed checkpoints`
              : `The log does NOT verify:\n${report.problems.map((p) => `  - ${p}`).join("\n")}`,
        );
        if (!report.ok) Deno.exitCode = 1;
      });
    });

  pluginCommands(program);
  dhtCommands(program, services);

  return program;
}

interface PluginView {
  name: string;
  version: string;
  status: string;
  reason?: string;
  enabled: boolean;
  granted: { permissions: string[]; host: string[] };
  signer: string | null;
}

function formatPlugin(p: PluginView): string {
  const granted = [...p.granted.permissions, ...p.granted.host].join(",") || "nothing";
  const why = p.reason ? ` (${p.reason})` : "";
  return `${p.name.padEnd(16)} ${p.version.padEnd(8)} ${p.status}${why}  granted: ${granted}` +
    (p.signer ? `  signed by ${p.signer}` : "");
}

/** `nzcore plugins ...` and `nzcore plugin NAME ARGS...` (NZ-PLUGIN-01). */
function pluginCommands(program: Command): void {
  const plugins = program.command("plugins").description("install and manage plugins");
  plugins.command("list")
    .description("list installed plugins with their state and grants")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const list = await client.request<PluginView[]>("GET", "/v1/plugins");
        print(list, !!opts.json, () => list.map(formatPlugin).join("\n") || "no plugins");
      });
    });
  plugins.command("install <path>")
    .description("install a plugin folder or a signed .nzp bundle (disabled until enabled)")
    .option("--grant <caps>", "grant these of what the manifest requests (comma-separated)")
    .option("--grant-all", "grant everything the manifest requests")
    .option("--enable", "enable it right away")
    .option("--json", "print JSON")
    .action(
      async (path: string, opts: { grant?: string; grantAll?: boolean; enable?: boolean; json?: boolean }, command) => {
        if (opts.grant !== undefined && opts.grantAll) throw new RangeError("Use --grant or --grant-all, not both");
        const grant = opts.grantAll ? "all" : (opts.grant ?? "").split(",").map((s) => s.trim()).filter(Boolean);
        await withClient(command, async (client) => {
          let p = await client.request<PluginView>("POST", "/v1/plugins", { path: resolve(path), grant });
          if (opts.enable) p = await client.request<PluginView>("POST", `/v1/plugins/${p.name}/enable`);
          print(p, !!opts.json, () => `Installed ${formatPlugin(p)}`);
        });
      },
    );
  for (
    const [verb, description] of [
      ["enable", "enable a plugin and start it"],
      ["disable", "stop a plugin and keep it stopped"],
      ["reload", "hot reload: stop, read the files again, start"],
    ] as const
  ) {
    const sub = plugins.command(`${verb} <name>`).description(description).option("--json", "print JSON");
    if (verb === "enable") sub.option("--watch", "reload the plugin when its files change");
    sub.action(async (name: string, opts: { json?: boolean; watch?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const query = opts.watch ? "?watch=true" : "";
        const p = await client.request<PluginView>("POST", `/v1/plugins/${encodeURIComponent(name)}/${verb}${query}`);
        print(p, !!opts.json, () => formatPlugin(p));
      });
    });
  }
  plugins.command("uninstall <name>")
    .description("stop a plugin and delete its files, storage and grants")
    .action(async (name: string, _opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        await client.request("DELETE", `/v1/plugins/${encodeURIComponent(name)}`);
        console.log(`Uninstalled ${name}`);
      });
    });
  plugins.command("trust [did]")
    .description("trust plugin bundles signed by a DID (without one: list the trusted signers)")
    .option("--json", "print JSON")
    .action(async (did: string | undefined, opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        if (did !== undefined) {
          await client.request("POST", "/v1/plugins/trust", { did });
          console.log(`Trusted ${did}`);
          return;
        }
        const t = await client.request<{ identities: string[]; trusted: string[] }>("GET", "/v1/plugins/trust");
        print(t, !!opts.json, () => [...t.identities.map((d) => `${d}  (this node)`), ...t.trusted].join("\n"));
      });
    });
  plugins.command("pack <dir>")
    .description("pack a plugin folder into a bundle signed by the node's active identity")
    .requiredOption("--out <file>", "the .nzp file to write")
    .action(async (dir: string, opts: { out: string }, command: Command) => {
      await withClient(command, async (client) => {
        const r = await client.request<{ path: string; bytes: number; signer: string }>("POST", "/v1/plugins/pack", {
          dir: resolve(dir),
          out: resolve(opts.out),
        });
        console.log(`Wrote ${r.path} (${r.bytes} bytes), signed by ${r.signer}`);
      });
    });
  program.command("plugin <name> [args...]")
    .description("run a plugin's command: nzcore plugin NAME ARGS...")
    .allowUnknownOption()
    .helpOption(false)
    .action(async (name: string, args: string[], _opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        const out = await client.request<{ stdout: string; stderr: string; code: number }>(
          "POST",
          `/v1/plugins/${encodeURIComponent(name)}/cli`,
          { args },
        );
        const enc = new TextEncoder();
        if (out.stdout) await Deno.stdout.write(enc.encode(out.stdout));
        if (out.stderr) await Deno.stderr.write(enc.encode(out.stderr));
        Deno.exitCode = out.code;
      });
    });
}

if (import.meta.main) {
  const program = buildProgram();
  try {
    await program.parseAsync(Deno.args, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      Deno.exit(error.exitCode);
    }
    const message = error instanceof Error ? error.message : String(error);
    console.error(`nzcore: ${message}`);
    Deno.exit(error instanceof NoNodeError ? 3 : 1);
  }
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `nzcore dht ...` and `nzcore services announce|withdraw|find` (NZ-DHT-01). */
function dhtCommands(program: Command, services: Command): void {
  const dht = program.command("dht").description("the DHT: lookups, values, the routing table");
  dht.command("status", { isDefault: true })
    .description("show the DHT's state: ID, contacts, own peer record, what the node publishes")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const s = await client.request<DhtState>("GET", "/v1/dht");
        print(s, !!opts.json, () => {
          if (!s.enabled) return "The DHT does not run on this node (--no-dht).";
          return [
            `id:        ${s.id}${s.readOnly ? " (read-only)" : ""}`,
            `contacts:  ${s.contacts}`,
            `bootstrap: ${s.bootstrap.join(" ") || "(none)"}`,
            `addresses: ${s.peerRecord?.addresses.join(" ") ?? "(no peer record published yet)"}`,
            `values:    ${s.published.values.join(", ") || "(none)"}`,
            `services:  ${s.published.services.join(", ") || "(none)"}`,
          ].join("\n");
        });
      });
    });
  dht.command("find-node <id>")
    .description("look up the nodes closest to an ID (a node ID or DID)")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const r = await client.request<{
          target: string;
          found: boolean;
          hops: number;
          queried: number;
          failed: number;
          durationMs: number;
          closest: { nodeId: string; address: string }[];
        }>("POST", "/v1/dht/find-node", { target: id });
        print(r, !!opts.json, () =>
          [
            `${r.found ? "found" : "not found"} in ${r.hops} hops, ${r.durationMs.toFixed(0)} ms ` +
            `(${r.queried} queried, ${r.failed} failed)`,
            ...r.closest.map((c) =>
              `  ${c.nodeId.slice(0, 16)}  ${c.address}${c.nodeId === r.target ? "  <- target" : ""}`
            ),
          ].join("\n"));
      });
    });
  dht.command("put <name> <value>")
    .description("publish a value under this node's key and a name (signed, newer wins); @FILE publishes a file")
    .option("--ttl <SECONDS>", "lifetime of each signed copy (60..86400, default 3600)", (v) => Number(v))
    .option("--json", "print JSON")
    .action(async (name: string, value: string, opts: { ttl?: number; json?: boolean }, command: Command) => {
      const body = value.startsWith("@")
        ? { base64: base64.encode(await Deno.readFile(value.slice(1))) }
        : { text: value };
      await withClient(command, async (client) => {
        const r = await client.request<{ keys: string[]; seq: number; stored: number; failed: number }>(
          "PUT",
          `/v1/dht/values/${encodeURIComponent(name)}`,
          { ...body, ...(opts.ttl === undefined ? {} : { ttlSeconds: opts.ttl }) },
        );
        print(r, !!opts.json, () => `Published "${name}" (seq ${r.seq}) at ${r.stored} nodes; key ${r.keys[0]}`);
      });
    });
  dht.command("get <did> <name>")
    .description("read the newest value a node (its DID; `self` for this node) published under a name")
    .option("--json", "print JSON")
    .action(async (did: string, name: string, opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        if (did === "self") {
          did = (await client.request<{ identity: { did: string } }>("GET", "/v1/state")).identity.did;
        }
        const v = await client.request<{ seq: number; expires: number; text?: string; base64: string }>(
          "GET",
          `/v1/dht/values/${encodeURIComponent(did)}/${encodeURIComponent(name)}`,
        );
        print(v, !!opts.json, () => v.text ?? `(binary, base64) ${v.base64}`);
      });
    });
  dht.command("rm <name>")
    .description("stop publishing a value")
    .action(async (name: string, _opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        await client.request("DELETE", `/v1/dht/values/${encodeURIComponent(name)}`);
        console.log(`No longer publishing "${name}"`);
      });
    });
  dht.command("find-peer <peer>")
    .description("show the addresses in a node's peer record (its node ID or DID)")
    .option("--json", "print JSON")
    .action(async (peer: string, opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const r = await client.request<{ did: string; addresses: string[] }>(
          "GET",
          `/v1/dht/peers/${encodeURIComponent(peer)}`,
        );
        print(r, !!opts.json, () => [r.did, ...r.addresses.map((a) => `  ${a}`)].join("\n"));
      });
    });

  services.command("announce <name>")
    .description("announce a service in the DHT with capability tags, so that others find it by capability")
    .requiredOption("--tag <TAG>", "a capability tag (a-z 0-9 . _ : / -), repeatable", collect)
    .option("--protocol <PROTOCOL>", "the stream protocol a client opens to use it")
    .option("--ttl <SECONDS>", "lifetime of each signed copy (60..86400, default 3600)", (v) => Number(v))
    .option("--json", "print JSON")
    .action(
      async (
        name: string,
        opts: { tag: string[]; protocol?: string; ttl?: number; json?: boolean },
        command: Command,
      ) => {
        await withClient(command, async (client) => {
          const r = await client.request<{ keys: string[]; stored: number }>("POST", "/v1/dht/services", {
            name,
            tags: opts.tag,
            ...(opts.protocol ? { protocol: opts.protocol } : {}),
            ...(opts.ttl === undefined ? {} : { ttlSeconds: opts.ttl }),
          });
          print(r, !!opts.json, () => `Announced "${name}" (${opts.tag.join(", ")}) at ${r.stored} nodes`);
        });
      },
    );
  services.command("withdraw <name>")
    .description("stop announcing a service")
    .action(async (name: string, _opts: unknown, command: Command) => {
      await withClient(command, async (client) => {
        await client.request("DELETE", `/v1/dht/services/${encodeURIComponent(name)}`);
        console.log(`No longer announcing "${name}"`);
      });
    });
  services.command("find <tag>")
    .description("find services announced in the DHT with a capability tag")
    .option("--json", "print JSON")
    .action(async (tag: string, opts: { json?: boolean }, command: Command) => {
      await withClient(command, async (client) => {
        const list = await client.request<FoundService[]>(
          "GET",
          `/v1/dht/services?tag=${encodeURIComponent(tag)}`,
        );
        print(
          list,
          !!opts.json,
          () =>
            list.map((s) =>
              `${s.name.padEnd(20)} ${s.nodeId.slice(0, 16)}  ${s.tags.join(",")}${s.protocol ? `  ${s.protocol}` : ""}`
            ).join("\n") || `no services with the tag "${tag}"`,
        );
      });
    });
}
