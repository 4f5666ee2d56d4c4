/**
 * The policies a node ships with (NZ-POLICY-01 "Default policies"). The
 * operator may replace them; without a replacement the gate loads these.
 *
 * @module
 */

/** The default policy set, in Cedar. */
export const DEFAULT_POLICIES = `// NewZoneCore default policies (NZ-POLICY-01). Anything no permit covers is denied.

// The node's owner and administrators may do anything.
@id("admin-all")
@risk("low")
@reason("administrators may do anything")
permit (principal in Role::"admin", action, resource);

@id("owner-all")
@risk("low")
@reason("the owner may do anything")
permit (principal in Role::"owner", action, resource);

// API tokens (admin-scoped: agent tokens reach only /v1/mcp, where they act as agents) may do anything, as the
// admin API always allowed, until the operator restricts one: a token holding role:restricted may do only what
// its grants allow (the "granted" policy below), and a forbid added to the set overrides this permit.
@id("token-all")
@risk("low")
@reason("API tokens may do anything unless restricted (role:restricted)")
permit (principal is Token, action, resource)
unless { principal in Role::"restricted" };

// Everyone else may do what the capability registry grants them, and no more.
@id("granted")
@risk("low")
@reason("the capability registry grants this action")
permit (principal, action, resource)
when { principal.granted };

// Agents may read the node's state, its peers and its services (what an MCP client asks first); approvals and
// everything else need a grant.
@id("agent-read")
@risk("low")
@reason("agents may read the node's state, peers and services")
permit (
  principal is Agent,
  action in [Action::"node.state", Action::"peer.list", Action::"service.list"],
  resource
);

// Agents reach other nodes only with an operator's approval, grant or not.
@id("agent-peer-send")
@outcome("require_approval")
@risk("medium")
@reason("an agent sending to a peer needs an operator's approval")
permit (principal is Agent, action == Action::"peer.send", resource);

// Destructive or far-reaching actions by agents always wait for an operator.
@id("agent-destructive")
@outcome("require_approval")
@risk("high")
@reason("an agent asking for a destructive action needs an operator's approval")
permit (
  principal is Agent,
  action in [
    Action::"identity.export",
    Action::"identity.import",
    Action::"plugin.install",
    Action::"plugin.uninstall",
    Action::"token.create",
    Action::"capability.grant",
    Action::"policy.update",
    Action::"node.stop",
    Action::"storage.delete"
  ],
  resource
)
when { principal.granted };

// Plugins and remote nodes never take the node's identity or its powers.
@id("no-identity-export")
@risk("critical")
@reason("plugins and remote nodes never export identities")
forbid (principal, action == Action::"identity.export", resource)
when { principal is Plugin || principal is Node };

@id("no-self-empowerment")
@risk("critical")
@reason("plugins, services and remote nodes never grant capabilities, change policies or decide approvals")
forbid (
  principal,
  action in [Action::"capability.grant", Action::"policy.update", Action::"approval.decide", Action::"token.create"],
  resource
)
when { principal is Plugin || principal is Service || principal is Node };
`;
