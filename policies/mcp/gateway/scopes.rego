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
	not scope_held(scope)
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
effective_scopes := {s | some s in input.token.scopes; scope_held(s)}

# METADATA
# title: Scope held
# description: >-
#   True when scope is one of the effective scopes: the token has it and the
#   agent may use it. Asked for one scope, this does not build the whole set.
scope_held(scope) if {
	scope in input.token.scopes
	agent_allows_scope(scope)
}

# METADATA
# title: Agent without scopes
# description: >-
#   An agent whose record sets no scopes (input.agent.scopes absent or null, as
#   in every Okta MCP adapter example) leaves the decision to the token's
#   scopes. An empty list is different: the agent may use none.
agent_allows_scope(_) if object.get(input.agent, "scopes", null) == null

# METADATA
# title: Agent scope
# description: An agent that lists scopes may use only those.
agent_allows_scope(scope) if scope in input.agent.scopes

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
# description: The read scope for read_methods, the write scope for write_methods; undefined for any other method.
method_scope(m) := data.mcpgw.scopes.read if {
	method_matches(method_patterns.read, m)
} else := data.mcpgw.scopes.write if {
	method_matches(method_patterns.write, m)
}

# METADATA
# title: Method matches a class
# description: >-
#   True when m is one of the class's plain names or matches one of its
#   glob patterns: the same as matching every entry as a glob.
method_matches(patterns, m) if m in patterns.names

method_matches(patterns, m) if glob_any(patterns.globs, m)

# METADATA
# title: Method patterns
# description: >-
#   data.mcpgw.scopes.read_methods and write_methods, each split into plain
#   names (no glob characters: they match only themselves, so they are looked
#   up) and glob patterns. It reads data only, so the gateway works it out
#   once per policy activation rather than once per decision.
method_patterns := {class: {
	"names": {p | some p in patterns; plain_name(p)},
	"globs": [p | some p in patterns; not plain_name(p)],
} |
	some class, patterns in {"read": data.mcpgw.scopes.read_methods, "write": data.mcpgw.scopes.write_methods}
}

# METADATA
# title: Plain name
# description: A string with none of the glob characters * ? [ ] { } and backslash.
plain_name(p) if {
	is_string(p)
	not regex.match(`[*?\[\]{}\\]`, p)
}

# METADATA
# title: Scope of a tool call
# description: >-
#   A read-only tool needs only the read scope; any other tool needs what
#   tools/call needs (call_scope).
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
	scope_held(data.mcpgw.scopes.read)
	scope_held(call_scope)
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
#   data.mcpgw.read_only_tools lists tool name patterns that are read-only on
#   every backend ("*") or on one backend, whatever the backend claims.
tool_read_only(tool) if glob.match(read_only_glob, null, tool.name)

# METADATA
# title: Read-only patterns for this backend
# description: The patterns of data.mcpgw.read_only_tools for "*" and this backend, as one glob.
read_only_glob := object.get(read_only_globs, backend_name, read_only_globs_elsewhere)

# METADATA
# title: Read-only globs per backend
# description: >-
#   read_only_patterns as one glob for each backend data.mcpgw.read_only_tools
#   names. It reads data only, so the gateway works it out once per policy
#   activation rather than once per decision.
read_only_globs := {backend: any_of(read_only_patterns(backend)) | some backend, _ in data.mcpgw.read_only_tools}

# METADATA
# title: Read-only glob of other backends
# description: The "*" patterns alone, as one glob, for a backend data.mcpgw.read_only_tools does not name.
read_only_globs_elsewhere := any_of([p | some p in object.get(data.mcpgw.read_only_tools, "*", [])])

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
