/**
 * The NewZoneCore kernel: identity, encrypted storage, the node and its API.
 *
 * ```ts ignore
 * import { startDaemon } from "./mod.ts";
 *
 * const daemon = await startDaemon({ dataDir: "./.data", api: { hostname: "127.0.0.1", port: 0 } });
 * console.log(daemon.node.identity.did, daemon.api.tcp);
 * await daemon.stop();
 * ```
 *
 * Two nodes as a library: open, listen, connect, open a stream, write and read.
 *
 * ```ts
 * import { Node } from "./mod.ts";
 *
 * const a = await Node.open({ dataDir: await Deno.makeTempDir() });
 * const b = await Node.open({ dataDir: await Deno.makeTempDir() });
 * b.peers.handle("example/echo/1", async (stream) => {
 *   for await (const message of stream) await stream.send(message);
 *   await stream.close();
 * });
 * const [address] = await b.peers.listen(["tcp://127.0.0.1:0"]);
 * const session = await a.peers.connect(address);
 * if (session.did !== b.identity.did) throw new Error("Cannot authenticate the peer");
 * const stream = await session.openStream("example/echo/1");
 * await stream.send(new TextEncoder().encode("hello"));
 * const echoed = new TextDecoder().decode((await stream.receive())!);
 * if (echoed !== "hello") throw new Error("Cannot echo");
 * await stream.close();
 * await a.close();
 * await b.close();
 * for (const node of [a, b]) await Deno.remove(node.dataDir, { recursive: true });
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./crypto/mod.ts";
export {
  type AtomicBatch,
  EncryptedStore,
  type Entry,
  type Key,
  type KeyPart,
  type ListOptions,
  Namespace,
  type StoreStats,
} from "./storage/encrypted_kv.ts";
export { type Checkpoint, EventLog, type LogEntry, type Signer, type VerifyReport } from "./storage/event_log.ts";
export { type BlobInfo, BlobStore } from "./storage/blob_store.ts";
export { createMasterKey, type MasterKeyMode, type MasterKeyOptions, openMasterKey } from "./storage/master_key.ts";
export { decodeDidKey, encodeDidKey } from "./identity/did.ts";
export { Identity, type IdentityInfo, type IdentityRecord, nodeIdOf } from "./identity/identity.ts";
export { type IdentityListing, IdentityStore } from "./identity/identities.ts";
export {
  type CreatedToken,
  TOKEN_SCOPES,
  type TokenInfo,
  type TokenRefusal,
  type TokenScope,
  TokenStore,
} from "./node/tokens.ts";
export { EventBus, type NodeEvent, type SubscribeOptions } from "./node/event_bus.ts";
export { Node, type NodeOptions, type StorageState, VERSION } from "./node/node.ts";
export type { FrameIO, PeerIdentity, SessionKeys } from "./channel/types.ts";
export {
  ChannelError,
  type ChannelFailure,
  HandshakeError,
  type HandshakeFailure,
  PeerMismatchError,
  VersionMismatchError,
} from "./channel/errors.ts";
export {
  type HandshakeIdentity,
  type HandshakeOptions,
  type HandshakeResult,
  performHandshake,
  type StaticKey,
} from "./channel/handshake.ts";
export {
  Channel,
  type ChannelClock,
  type ChannelClosed,
  type ChannelOptions,
  type ChannelStats,
  openChannel,
} from "./channel/channel.ts";
export { Stream, type StreamOperationOptions } from "./channel/stream.ts";
export {
  DatagramEndpoint,
  type DatagramEndpointOptions,
  type DatagramEndpointStats,
  DatagramHandshake,
} from "./channel/datagram_endpoint.ts";
export { DatagramSession, type DatagramSessionOptions, type DatagramSessionStats } from "./channel/datagram_session.ts";
export type { KeyPair } from "./channel/noise.ts";
export { AddressBook, type PeerRecord, resolvePeerName } from "./peers/address_book.ts";
export {
  compareRecords,
  decodeAddresses,
  decodeRecord,
  decodeService,
  encodeAddresses,
  introduction,
  MAX_RECORD_SIZE,
  mutableKey,
  openRecord,
  peerKey,
  peerRecord,
  RecordError,
  recordKeys,
  type RecordKind,
  type RecordRefusal,
  type RecordSigner,
  sameSlot,
  type ServiceInfo,
  serviceKey,
  serviceRecord,
  type SignedRecord,
  signRecord,
} from "./discovery/record.ts";
export {
  type Contact,
  Dht,
  type DhtOptions,
  type DhtStats,
  type GetResult,
  type LookupCallOptions,
  type LookupResult,
  type PutResult,
} from "./discovery/dht/dht.ts";
export type { RpcStats } from "./discovery/dht/rpc.ts";
export { formatNzUri, isNzUri, type NzUri, type NzUriInit, parseNzUri } from "./discovery/nz_uri.ts";
export {
  type CheckedIntroduction,
  checkIntroduction,
  introduce,
  INTRODUCE_PROTOCOL,
  type IntroducedNode,
  type IntroduceOptions,
  INTRODUCTION_POLICIES,
  type IntroductionAnswer,
  type IntroductionOutcome,
  type IntroductionPolicy,
  IntroductionService,
  type IntroductionStatus,
  serveIntroductions,
  type ServeIntroductionsOptions,
} from "./discovery/introduction.ts";
export {
  DhtService,
  type DhtServiceOptions,
  type DhtState,
  type FoundService,
  type FoundValue,
} from "./node/dht_service.ts";
export {
  LAN_MODES,
  LAN_SERVICE_TYPE,
  LAN_TXT_VERSION,
  LanDiscovery,
  type LanDiscoveryOptions,
  type LanMode,
  type LanPeer,
  type LanStats,
  type LanTxt,
  lanTxt,
  parseLanTxt,
} from "./discovery/lan.ts";
export {
  type HandshakeLimits,
  type Link,
  MESSAGE_PROTOCOL,
  PEER_POLICIES,
  PeerManager,
  type PeerManagerOptions,
  type PeerPolicy,
  type ReconnectOptions,
  Session,
  type SessionInfo,
  type SessionPath,
  type StreamHandler,
} from "./peers/manager.ts";
export {
  relayConnect,
  type RelayConnectOptions,
  RelayError,
  type RelayOptions,
  type RelayService,
  type RelayServiceOptions,
  type RelayStats,
  RelayStatus,
  type RelayStatusName,
  serveRelay,
} from "./peers/relay.ts";
export {
  type Candidate,
  type CandidateKind,
  type CandidateSource,
  punch,
  PunchError,
  type PunchOptions,
  PunchRefusal,
  type PunchService,
  type PunchServiceOptions,
  type PunchStats,
  servePunch,
  type UpgradeOptions,
  upgradeRelayed,
} from "./peers/punch.ts";
export {
  Reachability,
  type ReachabilityOptions,
  type ReachabilityState,
  type StunObservation,
} from "./node/reachability.ts";
export {
  type ConnectViaResult,
  parseTurnUrl,
  Traversal,
  type TraversalOptions,
  type TurnServerOptions,
  type TurnState,
} from "./node/traversal.ts";
export { type HostPort, parseHostPort, resolveDataDir } from "./node/config.ts";
export {
  type Clock,
  type HealthStatus,
  type Service,
  SERVICE_STATES,
  type ServiceContext,
  type ServiceState,
  type ServiceStatus,
  Supervisor,
  type SupervisorOptions,
} from "./runtime/supervisor.ts";
export {
  BUILTIN_PREFIX,
  CAPABILITY_KINDS,
  type CapabilityKind,
  type HealthOptions,
  isBuiltin,
  parseManifest,
  type RestartOptions,
  type ServiceManifest,
} from "./runtime/manifest.ts";
export { type WorkerService, workerService, type WorkerServiceOptions } from "./runtime/worker_service.ts";
export { type LoadedManifests, loadServiceManifests } from "./runtime/loader.ts";
export {
  createSandbox,
  HOST_FUNCTIONS,
  type InstrumentedModule,
  instrumentModule,
  type InstrumentOptions,
  type Sandbox,
  type SandboxHost,
  type SandboxKv,
  SandboxLimitError,
  SandboxLinkError,
  type SandboxOptions,
  type SandboxResult,
} from "./runtime/wasm_sandbox.ts";
export {
  type Actor,
  type InstallOptions,
  type PluginGrant,
  type PluginHttpCall,
  type PluginInfo,
  PluginManager,
  type PluginManagerNode,
  type PluginManagerOptions,
  type PluginRecord,
} from "./runtime/plugins.ts";
export { PluginCallError, PluginHost, type PluginHostOptions, type PluginNode } from "./runtime/plugin_host.ts";
export {
  HOST_CAPABILITIES,
  type HostCapability,
  parsePluginManifest,
  type PluginLimits,
  type PluginManifest,
} from "./runtime/plugin_manifest.ts";
export { type BundleSigner, openBundle, type OpenedBundle, packBundle } from "./runtime/plugin_bundle.ts";
export { type ApiHandler, type AppOptions, createApp } from "./api/app.ts";
export type { ApiContext, ApiEnv } from "./api/context.ts";
export { type AuthLimits, FailureLimiter } from "./api/auth.ts";
export type { PermissionReport } from "./node/permissions.ts";
export { type Daemon, type DaemonOptions, startDaemon } from "./daemon.ts";
export { NodeClient } from "./cli/client.ts";
