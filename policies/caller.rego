package mcp.gateway

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
}

# METADATA
# title: Backend restricted to groups
# description: >-
#   data.mcpgw.backend_groups narrows who may use a backend: a backend listed
#   there is only for members of one of its groups. The agent's backend_access
#   is enforced before the policy runs; this rule can only narrow it further.
caller_denials contains transport_denial(sprintf(
	"backend %s is restricted to members of %s",
	[backend_name, concat(", ", sort(allowed))],
)) if {
	allowed := data.mcpgw.backend_groups[backend_name]
	not member_of_any(allowed)
}

# METADATA
# title: Member of one of the groups
# description: The caller's token lists one of groups.
member_of_any(groups) if {
	some group in groups
	group in caller_groups
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
# title: Backend name
# description: The backend the request is routed to.
default backend_name := ""

backend_name := input.backend.name

# METADATA
# title: Caller groups
# description: The groups of the token's subject, as verified by the gateway.
default caller_groups := []

caller_groups := input.token.groups
