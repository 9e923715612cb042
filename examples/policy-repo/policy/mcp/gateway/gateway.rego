# METADATA
# title: Company MCP gateway policy
# description: >-
#   The gateway policy of this repository, for mcpgw's policy contract
#   (input version 1): decision for each message, stream and close;
#   visible_tools, visible_resources and visible_prompts for lists. Roles
#   come from token groups, grants and scopes from data.company (data.json):
#   most changes are data changes.
package mcp.gateway

import data.mcp.roles.caller_roles

# METADATA
# title: Decision
# description: >-
#   allow unless a denial fired. status 403 answers the request with HTTP 403
#   (insufficient_scope when scope is set); 0 answers one JSON-RPC message
#   with error -32003.
# entrypoint: true
decision := {"allow": true, "reasons": [], "status": 0} if {
	count(deny) == 0
} else := object.union(
	{
		"allow": false,
		"reasons": sort([d.reason | some d in deny]),
		"status": max({d.status | some d in deny}),
	},
	scope_field,
)

default scope_field := {}

scope_field := {"scope": concat(" ", sort(missing))} if {
	missing := {d.scope | some d in deny; d.scope}
	count(missing) > 0
}

# METADATA
# title: Caller denials
# description: Checks about the caller and the backend, whatever the message.
deny contains {"reason": "unsupported policy input version", "status": 403} if input.version != 1

deny contains {"reason": sprintf("agent %s may not use backend %s", [input.agent.id, input.backend.name]), "status": 403} if {
	not input.backend.name in input.agent.backend_access
}

deny contains {"reason": "no role: the token's groups map to none", "status": 403} if count(caller_roles) == 0

# METADATA
# title: Message denials
# description: Scope and role checks for one JSON-RPC request or notification.
deny contains {"reason": sprintf("missing scope %s", [needed]), "status": 403, "scope": needed} if {
	input.mcp.kind in {"request", "notification"}
	needed := required_scope
	not needed in input.token.scopes
}

deny contains {"reason": sprintf("no role may call %s on %s", [input.mcp.tool, input.backend.name]), "status": 0} if {
	input.mcp.method == "tools/call"
	not granted(input.mcp.tool)
}

# METADATA
# title: Granted tool
# description: Some role of the caller grants the tool on this backend (or on every backend, "*").
granted(tool) if {
	some role in caller_roles
	some backend in [input.backend.name, "*"]
	some pattern in object.get(data.company.roles.grants, [role, backend], [])
	glob.match(pattern, null, tool)
}

# METADATA
# title: Required scope
# description: >-
#   Read methods and read-only tools need the read scope; any other tool call
#   and any other method needs the write scope.
required_scope := data.company.scopes.read if {
	some pattern in data.company.scopes.read_methods
	glob.match(pattern, null, input.mcp.method)
} else := data.company.scopes.read if {
	input.mcp.method == "tools/call"
	read_tool(input.mcp.tool)
} else := data.company.scopes.write

read_tool(name) if {
	some pattern in data.company.roles.read_tools
	glob.match(pattern, null, name)
}

# METADATA
# title: Caller passes
# description: No caller check fired, so the caller may see something.
caller_passes if {
	input.version == 1
	input.backend.name in input.agent.backend_access
	count(caller_roles) > 0
}

# METADATA
# title: Visible tools
# description: The listed tools a tools/call by this caller would be allowed (role and scope).
# entrypoint: true
visible_tools contains tool.name if {
	caller_passes
	some tool in input.tools
	granted(tool.name)
	tool_scope_held(tool.name)
}

tool_scope_held(name) if read_tool(name)

tool_scope_held(_) if data.company.scopes.write in input.token.scopes

# METADATA
# title: Visible resources
# description: Every listed resource, for a caller with the read scope.
# entrypoint: true
visible_resources contains resource.uri if {
	caller_passes
	data.company.scopes.read in input.token.scopes
	some resource in input.resources
}

# METADATA
# title: Visible prompts
# description: Every listed prompt, for a caller with the read scope.
# entrypoint: true
visible_prompts contains prompt.name if {
	caller_passes
	data.company.scopes.read in input.token.scopes
	some prompt in input.prompts
}
