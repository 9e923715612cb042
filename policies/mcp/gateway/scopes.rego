package mcp.gateway

# METADATA
# title: Scope required by the method
# description: >-
#   Every method needs one OAuth scope, and session traffic the scope of the
#   method it is decided as (session_method). tools/call on a read-only tool
#   needs only the read scope; see tool_scope.
message_denials contains {
	"reason": sprintf("missing scope %s", [scope]),
	"status": 403,
	"scope": scope,
} if {
	scope := required_scope
	not scope in effective_scopes
}

# METADATA
# title: Unknown methods are refused
# description: >-
#   A JSON-RPC request or notification whose method is listed in neither
#   data.mcpgw.scopes.read_methods nor write_methods is refused, so a new
#   protocol method is closed until someone classifies it.
message_denials contains message_denial(sprintf("method %s is not allowed by policy", [method])) if {
	message_traffic
	not required_scope
}

# METADATA
# title: Effective scopes
# description: >-
#   The scopes the caller may use on this request: those in the token that the
#   agent is also allowed to use (token scopes intersected with agent scopes;
#   the token's scopes alone when the agent sets none).
effective_scopes := {s | some s in input.token.scopes; agent_allows_scope(input.agent, s)}

# METADATA
# title: Agent without scopes
# description: >-
#   An agent whose record sets no scopes (its scopes absent or null, as in
#   every Okta MCP adapter example) leaves the decision to the token's
#   scopes. An empty list is different: the agent may use none.
agent_allows_scope(agent, _) if object.get(agent, "scopes", null) == null

# METADATA
# title: Agent scope
# description: An agent that lists scopes may use only those.
agent_allows_scope(agent, scope) if scope in agent.scopes

# METADATA
# title: Method of the message
# description: >-
#   The JSON-RPC method of a request or notification; "" for session traffic
#   (whose input.mcp.method is "" or the HTTP method), so that no rule about
#   a method applies to it.
default method := ""

method := input.mcp.method if message_traffic

# METADATA
# title: Scope required by a JSON-RPC message
# description: tools/call is decided per tool (tool_scope); every other method by its class (method_scope).
required_scope := tool_scope(called_tool) if {
	method == "tools/call"
} else := method_scope(method) if {
	message_traffic
}

# METADATA
# title: Scope required by session traffic
# description: >-
#   A response, stream or close needs what the method it is decided as
#   (session_method, initialize) needs: the read scope by default.
required_scope := method_scope(session_method) if {
	not message_traffic
}

# METADATA
# title: Scope of a method
# description: >-
#   The read scope for a method matching one of data.mcpgw.scopes.read_methods,
#   the write scope for one matching write_methods (glob patterns, see
#   glob_any); undefined for any other method.
method_scope(m) := data.mcpgw.scopes.read if {
	glob_any(data.mcpgw.scopes.read_methods, m)
} else := data.mcpgw.scopes.write if {
	glob_any(data.mcpgw.scopes.write_methods, m)
}

# METADATA
# title: Scope of a tool call
# description: >-
#   A read-only tool (tool_read_only) needs only the read scope; any other
#   tool needs what tools/call needs (call_scope).
tool_scope(tool) := data.mcpgw.scopes.read if {
	tool_read_only(tool)
} else := call_scope

# METADATA
# title: Scope of tools/call
# description: The scope tools/call needs (the write scope by default).
call_scope := method_scope("tools/call")

# METADATA
# title: Every tool scope held
# description: The caller holds both the read scope and the scope tools/call needs.
every_tool_scope_held if {
	data.mcpgw.scopes.read in effective_scopes
	call_scope in effective_scopes
}

# METADATA
# title: Read-only tool by annotation
# description: >-
#   The backend's own readOnlyHint annotation marks a tool read-only when
#   data.mcpgw.trust_read_only_hint is true.
tool_read_only(tool) if {
	tool.annotations.readOnlyHint == true
	data.mcpgw.trust_read_only_hint == true
}

# METADATA
# title: Read-only tool by data
# description: >-
#   The tool's name matches the read-only patterns of this backend
#   (read_only_glob).
tool_read_only(tool) if glob.match(read_only_glob, null, tool.name)

# METADATA
# title: Read-only glob of this backend
# description: >-
#   The patterns data.mcpgw.read_only_tools lists for every backend ("*")
#   and for this backend, as one glob (any_of): read-only whatever the
#   backend claims.
read_only_glob := any_of(read_only_patterns(backend_name))

# METADATA
# title: Read-only patterns of a backend
# description: The patterns data.mcpgw.read_only_tools lists for every backend ("*") and for backend.
read_only_patterns(backend) := [p |
	some b in ["*", backend]
	some p in object.get(data.mcpgw.read_only_tools, b, [])
]

# METADATA
# title: Called tool
# description: >-
#   The tool of a tools/call with its catalog entry (annotations) from
#   input.tools; the first entry of that name wins.
called_tool := entries[0] if {
	entries := [t | some t in input.tools; t.name == tool_name]
	count(entries) > 0
} else := {"name": tool_name, "annotations": {}}

# METADATA
# title: Tool, prompt or resource named by the message
# description: params.name of tools/call and prompts/get, params.uri of resources/read.
default tool_name := ""

tool_name := input.mcp.tool
