/**
 * The CLI's client of a running node: HTTP over the Unix socket in the data
 * directory, authenticated with the local admin token that the node writes
 * there (mode 0600) at every start. A request the policy gate holds for an
 * operator's approval fails with {@linkcode ApiError} `approval_required`
 * naming the approval; once approved, the same command run again with
 * `NZCORE_APPROVAL=<id>` sends it as the `x-nzcore-approval` header.
 *
 * @module
 */

import { join } from "node:path";
import { FILES } from "../node/config.ts";

/** The header that carries an approved approval when a held request is repeated (kernel/api/gate.ts). */
const APPROVAL_HEADER = "x-nzcore-approval";

/** `NZCORE_APPROVAL`, when set and readable: the approval to send with every request. */
function approvalFromEnv(): string | undefined {
  try {
    return Deno.env.get("NZCORE_APPROVAL") || undefined;
  } catch {
    return undefined; // no permission to read it: no approval
  }
}

/** No node runs for the data directory, or it cannot be reached. */
export class NoNodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoNodeError";
  }
}

/** An error response from the API. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** A client of one node's API. */
export class NodeClient implements Disposable {
  /** The data directory of the node this client talks to. */
  readonly dataDir: string;
  #http: Deno.HttpClient;
  #token: string;
  #approval: string | undefined;

  private constructor(dataDir: string, http: Deno.HttpClient, token: string, approval: string | undefined) {
    this.dataDir = dataDir;
    this.#http = http;
    this.#token = token;
    this.#approval = approval;
  }

  /**
   * Connects to the node of `dataDir`.
   *
   * @throws {NoNodeError} when no node runs there.
   */
  static async connect(dataDir: string): Promise<NodeClient> {
    const socket = join(dataDir, FILES.socket);
    const notRunning = `No node is running for ${dataDir} (start one with: nzcore start --data-dir ${dataDir})`;
    let token: string;
    try {
      await Deno.lstat(socket);
      token = (await Deno.readTextFile(join(dataDir, FILES.adminToken))).trim();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new NoNodeError(notRunning);
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new NoNodeError(
          `Cannot read the admin token in ${dataDir}: only the directory's owner can use this node`,
        );
      }
      throw error;
    }
    const http = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
    return new NodeClient(dataDir, http, token, approvalFromEnv());
  }

  /** Sends a request; returns the parsed JSON body. @throws {ApiError} on an error status. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError(response.status, "bad_response", `The node answered ${response.status} with a non-JSON body`);
    }
    const pending = json as { outcome?: string; approval?: string; message?: string } | undefined;
    if (response.status === 202 && pending?.outcome === "REQUIRE_APPROVAL") {
      throw new ApiError(
        202,
        "approval_required",
        `${pending.message ?? `Approval ${pending.approval} is pending`}\n(with the CLI: approve it with ` +
          `\`nzcore approvals approve ${pending.approval}\`, then run the same command with NZCORE_APPROVAL=${pending.approval})`,
      );
    }
    if (!response.ok) {
      const error = (json as { error?: { code?: string; message?: string } })?.error;
      throw new ApiError(response.status, error?.code ?? "unknown", error?.message ?? `HTTP ${response.status}`);
    }
    return json as T;
  }

  /** A raw authenticated fetch (for streams). */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.#token}`);
    if (this.#approval !== undefined) headers.set(APPROVAL_HEADER, this.#approval);
    try {
      return await fetch(`http://nzcore${path}`, { ...init, headers, client: this.#http });
    } catch (error) {
      throw new NoNodeError(
        `No node answers on ${join(this.dataDir, FILES.socket)} (${(error as Error).message}); is it running?`,
      );
    }
  }

  /** Closes the HTTP client and its Unix-socket connections. */
  close(): void {
    this.#http.close();
  }

  /** Closes the client, like {@linkcode NodeClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
