# METADATA
# title: MCP gateway policy
# description: >-
#   Decides everything that passes through mcpgw to a backend (JSON-RPC
#   messages, and the responses, GET streams and DELETEs of their sessions:
#   input.mcp.kind) and which catalog items (tools, resources, prompts) each
#   caller may see. The gateway reads decision, visible_tools,
#   visible_resources and visible_prompts. Every other rule here is a named
#   building block; the settings live in data.mcpgw (policies/data.json), not
#   in the rules.
package mcp.gateway

# METADATA
# title: Decision
# description: >-
#   What the gateway enforces for one message, stream or close. allow is true
#   only when no denial fired. status 403 marks a transport-level denial (HTTP
#   403, with error="insufficient_scope" when a scope is missing); 0 marks a
#   per-message denial (JSON-RPC error -32003). scope, present only when a
#   scope is missing, names it for the WWW-Authenticate header. An allow may
#   carry obligations (obligations.rego): redact the result, count a budget.
# entrypoint: true
decision := object.union({"allow": true, "reasons": [], "status": 0}, obligations_field) if {
	count(deny) == 0
} else := object.union(
	{
		"allow": false,
		"reasons": sort({d.reason | some d in deny}),
		"status": max({d.status | some d in deny}),
	},
	missing_scope_field,
)

# METADATA
# title: Missing scope field
# description: The scope(s) the caller lacks, space-separated as in OAuth; absent when no scope is missing.
default missing_scope_field := {}

missing_scope_field := {"scope": concat(" ", sort(missing))} if {
	missing := {d.scope | some d in deny; d.scope}
	count(missing) > 0
}

# METADATA
# title: All denials
# description: >-
#   Every reason this message is refused: the caller checks (agent, backend,
#   input version), which hold for the whole request, and the message checks
#   (kind of traffic, method, scope, role, arguments).
deny := caller_denials | message_denials

# METADATA
# title: Caller passes
# description: No caller check fired; without it nothing is visible.
caller_passes if count(caller_denials) == 0

# METADATA
# title: Visible tools
# description: >-
#   Names of input.tools the caller may see: exactly those a tools/call would
#   allow by the caller checks, the role grant (permitted), the tool's scope
#   (tool_scope), tool integrity (held) and the tool screen (screened).
#   Argument rules depend on the arguments of a call and so do not hide a
#   tool.
# entrypoint: true
visible_tools contains tool.name if {
	caller_passes
	not every_tool_scope_held
	grants := caller_grants.tools
	backend := input.backend
	some tool in input.tools
	permitted(grants, tool.name)
	tool_scope(tool) in effective_scopes
	not held(backend, tool)
	not screened(backend, tool)
}

# A caller holding every scope a tool can need passes tool_scope for every
# tool: the same rule, without working the scope out a thousand times.
visible_tools contains tool.name if {
	caller_passes
	every_tool_scope_held
	grants := caller_grants.tools
	backend := input.backend
	some tool in input.tools
	permitted(grants, tool.name)
	not held(backend, tool)
	not screened(backend, tool)
}

# METADATA
# title: Visible resources
# description: >-
#   URIs of input.resources the caller may read, by the same checks as
#   resources/read; resource templates held by tool integrity are hidden.
# entrypoint: true
visible_resources contains resource.uri if {
	caller_passes
	method_scope("resources/read") in effective_scopes
	grants := caller_grants.resources
	some resource in input.resources
	permitted(grants, resource.uri)
	not resource_held(input.backend, resource)
}

# METADATA
# title: Visible prompts
# description: >-
#   Names of input.prompts the caller may get, by the same checks as
#   prompts/get; prompts held by tool integrity are hidden.
# entrypoint: true
visible_prompts contains prompt.name if {
	caller_passes
	method_scope("prompts/get") in effective_scopes
	grants := caller_grants.prompts
	some prompt in input.prompts
	permitted(grants, prompt.name)
	not held(input.backend, prompt)
}

# METADATA
# title: Transport-level denial
# description: A denial about the caller, its token or the kind of traffic; the gateway answers HTTP 403.
transport_denial(reason) := {"reason": reason, "status": 403}

# METADATA
# title: Per-message denial
# description: A denial of one JSON-RPC message; the gateway answers a JSON-RPC error.
message_denial(reason) := {"reason": reason, "status": 0}

# METADATA
# title: Glob match against a list
# description: >-
#   True when name matches one of the glob patterns. Patterns use * ? [...]
#   and {a,b}; there are no delimiters, so "*" matches any run of characters,
#   including "/" and ".".
glob_any(patterns, name) if {
	some pattern in patterns
	glob.match(pattern, null, name)
}

# METADATA
# title: One glob for a list of patterns
# description: >-
#   The glob alternation {p1,p2,...}, for lists matched against many names:
#   one match per name instead of one per pattern. A pattern's own {a,b}
#   nests; a bare comma in a pattern would split it.
any_of(patterns) := patterns[0] if {
	count(patterns) == 1
} else := concat("", ["{", concat(",", patterns), "}"])
