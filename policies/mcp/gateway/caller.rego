package mcp.gateway

import data.mcp.roles.caller_groups
import data.mcp.roles.token_issuer

# METADATA
# title: Input contract version
# description: >-
#   The rules are written for one version of the input document
#   (data.mcpgw.input_version). Any other version is refused so that a change
#   of the contract cannot slip past rules that no longer read the right fields.
caller_denials contains transport_denial(sprintf(
	"policy expects input version %v, got %v",
	[data.mcpgw.input_version, input_version],
)) if {
	input_version != data.mcpgw.input_version
}

# METADATA
# title: Agent must be identified
# description: Every request names its agent (X-Agent-ID); a request without one is refused.
caller_denials contains transport_denial("no agent identified (X-Agent-ID is missing)") if {
	agent_id == ""
}

# METADATA
# title: Agent must be enabled
# description: A disabled agent is refused even if the core let it through.
caller_denials contains transport_denial(sprintf("agent %s is disabled", [agent_id])) if {
	not agent_enabled
	agent_id != ""
}

# METADATA
# title: Agent bound to the token's client
# description: >-
#   When both the agent record and the token name an OAuth client, they must be
#   the same client: knowing an agent id must not let another application act
#   as that agent.
caller_denials contains transport_denial(sprintf(
	"agent %s is bound to client %s, but the token was issued to client %s",
	[agent_id, agent_client, token_client],
)) if {
	agent_client != token_client
	agent_client != ""
	token_client != ""
	not token_via_gateway
}

# METADATA
# title: Agent bound to a client needs a token proving it
# description: >-
#   An agent with a client takes only tokens that prove that client (cid, azp,
#   client_id or appid). A token proving no client proves nothing about the
#   application holding it, so it cannot act as a client-bound agent.
caller_denials contains transport_denial(sprintf(
	"agent %s is bound to client %s, but the token proves no client",
	[agent_id, agent_client],
)) if {
	agent_client != ""
	token_client == ""
	not token_via_gateway
}

# METADATA
# title: Tokens without a client only where allowed
# description: >-
#   A token proving no client may use only an agent without a client that is
#   configured to take such tokens (agents.<name>.allow_clientless_tokens).
caller_denials contains transport_denial(sprintf(
	"the token proves no client, and agent %s does not take tokens without one (allow_clientless_tokens)",
	[agent_id],
)) if {
	agent_id != ""
	agent_client == ""
	token_client == ""
	not agent_takes_clientless_tokens
}

# METADATA
# title: Agent bound to the token's issuer
# description: >-
#   An agent bound to an issuer takes only that issuer's tokens: a client id
#   is one issuer's registration, and any other issuer can mint tokens naming
#   it.
caller_denials contains transport_denial(sprintf(
	"agent %s is bound to issuer %s, but the token was issued by %s",
	[agent_id, agent_issuer, token_issuer],
)) if {
	agent_issuer != ""
	agent_issuer != token_issuer
}

# METADATA
# title: Backend restricted to groups
# description: >-
#   data.mcpgw.backend_groups narrows who may use a backend: a backend listed
#   there is only for members of one of its groups. Groups are the token
#   issuer's: data.mcpgw.issuer_backend_groups[<iss>], when the issuer has an
#   entry, replaces backend_groups for that issuer's tokens, and a backend
#   restricted in either stays restricted (no entry for it: no group admits).
#   The agent's backend_access is enforced before the policy runs; this rule
#   can only narrow it further.
caller_denials contains transport_denial(sprintf(
	"backend %s is restricted to members of %s",
	[backend_name, concat(", ", sort(allowed))],
)) if {
	backend_name in restricted_backends
	allowed := backend_admitting_groups
	count(allowed) > 0
	not member_of_any(caller_groups, allowed)
}

caller_denials contains transport_denial(sprintf(
	"backend %s is restricted, and no group of issuer %s admits to it",
	[backend_name, token_issuer],
)) if {
	backend_name in restricted_backends
	count(backend_admitting_groups) == 0
}

# METADATA
# title: Restricted backends
# description: >-
#   Every backend named in data.mcpgw.backend_groups or in any issuer's entry
#   of data.mcpgw.issuer_backend_groups.
restricted_backends := {backend | some backend, _ in object.get(data.mcpgw, "backend_groups", {})} | {backend |
	some entry in object.get(data.mcpgw, "issuer_backend_groups", {})
	some backend, _ in entry
}

# METADATA
# title: Groups admitting the caller to this backend
# description: >-
#   The groups that admit to this backend under the token issuer's entry of
#   data.mcpgw.issuer_backend_groups, else under data.mcpgw.backend_groups;
#   [] when that mapping does not name the backend.
backend_admitting_groups := object.get(entry, backend_name, []) if {
	entry := data.mcpgw.issuer_backend_groups[token_issuer]
} else := object.get(object.get(data.mcpgw, "backend_groups", {}), backend_name, [])

# METADATA
# title: Member of one of the groups
# description: member_groups (a caller's groups) lists one of groups.
member_of_any(member_groups, groups) if {
	some group in groups
	group in member_groups
}

# METADATA
# title: Input version
# description: input.version, or null when absent.
default input_version := null

input_version := input.version

# METADATA
# title: Agent id
# description: The agent's id, or "" when the request names none.
default agent_id := ""

agent_id := input.agent.id

# METADATA
# title: Agent enabled
# description: True only when the agent record says enabled is true.
agent_enabled if input.agent.enabled == true

# METADATA
# title: Agent's client
# description: The OAuth client the agent is registered as, or "".
default agent_client := ""

agent_client := input.agent.client_id

# METADATA
# title: Token's client
# description: The OAuth client the token was issued to, or "".
default token_client := ""

token_client := input.token.client_id

# METADATA
# title: Token issued by the gateway
# description: >-
#   The gateway's own authorization server issued the token (input.token.via):
#   its agent was bound by the registration rules when its client registered,
#   and the gateway resolved it from the token, so the token's client is the
#   registered client, never the agent's client at the IdP.
token_via_gateway if input.token.via != ""

# METADATA
# title: Agent's issuer
# description: The issuer whose tokens the agent takes, or "" for any trusted issuer.
default agent_issuer := ""

agent_issuer := input.agent.issuer

# METADATA
# title: Agent takes tokens without a client
# description: True only when the agent record says allow_clientless_tokens is true.
agent_takes_clientless_tokens if input.agent.allow_clientless_tokens == true

# METADATA
# title: Backend name
# description: The backend the request is routed to.
default backend_name := ""

backend_name := input.backend.name
