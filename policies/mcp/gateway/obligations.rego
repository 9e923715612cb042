package mcp.gateway

# METADATA
# title: Obligations of an allowed call
# description: >-
#   What the gateway must do, besides forwarding, for a tools/call the
#   policy allows (decision.obligations): redact what the result shows to
#   callers whose highest role is at most data.mcpgw.obligations.redact.up_to_role,
#   and count every caller's calls of each tool against
#   data.mcpgw.obligations.tool_budget (per subject and tool), and ask the
#   person first for the tools data.mcpgw.obligations.confirm.tools names
#   (globs such as delete_*). All of it is data:
#   remove an entry to turn it off. The gateway refuses an obligation it does
#   not know, so a policy can never ask for more than is enforced.
call_obligations[name] := obligation if {
	some name, obligation in {
		"redact": redact_obligation,
		"rate_limit": budget_obligation,
		"confirm": confirm_obligation,
	}
	obligation != null
}

# METADATA
# title: Redaction for the caller
# description: >-
#   The redact obligation (patterns and fields of
#   data.mcpgw.obligations.redact) when the call is a tools/call and the
#   caller holds no role above up_to_role; null otherwise.
default redact_obligation := null

redact_obligation := {"patterns": r.patterns, "fields": r.fields} if {
	method == "tools/call"
	r := data.mcpgw.obligations.redact
	not holds_role_above(r.up_to_role)
}

# METADATA
# title: Holds a role above
# description: The caller holds some role ranked higher than role.
holds_role_above(role) if {
	some held in data.mcp.roles.caller_roles
	data.mcp.roles.role_ranks[held] > data.mcp.roles.role_ranks[role]
}

# METADATA
# title: Call budget for the caller
# description: >-
#   The rate_limit obligation of data.mcpgw.obligations.tool_budget (limit and
#   window) keyed by the token's issuer, subject, backend and tool, for every
#   tools/call; null when no budget is set.
default budget_obligation := null

budget_obligation := {
	"key": concat("|", ["tool_budget", input.token.iss, input.token.sub, input.backend.name, input.mcp.tool]),
	"limit": b.limit,
	"window": b.window,
} if {
	method == "tools/call"
	b := data.mcpgw.obligations.tool_budget
}

# METADATA
# title: Confirmation for the call
# description: >-
#   The confirm obligation (a question naming the tool, its backend and its
#   arguments) when the called tool matches one of
#   data.mcpgw.obligations.confirm.tools; null otherwise.
default confirm_obligation := null

confirm_obligation := {"message": sprintf("Allow %s on %s with %s?", [input.mcp.tool, input.backend.name, json.marshal(object.get(input.mcp, "arguments", {}))])} if {
	method == "tools/call"
	some pattern in data.mcpgw.obligations.confirm.tools
	glob.match(pattern, [], input.mcp.tool)
}

# METADATA
# title: Obligations field
# description: '{"obligations": ...} when the call has any, else {}: merged into an allowing decision.'
default obligations_field := {}

obligations_field := {"obligations": call_obligations} if count(call_obligations) > 0
