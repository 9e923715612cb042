package mcp.gateway

# METADATA
# title: Scope required by the method
# description: >-
#   Every method needs one OAuth scope. tools/call on a read-only tool needs
#   only the read scope; see tool_scope.
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
#   A method listed in neither data.mcpgw.scopes.read_methods nor write_methods
#   is refused, so a new protocol method is closed until someone classifies it.
message_denials contains message_denial(sprintf("method %s is not allowed by policy", [method])) if {
	not required_scope
}

# METADATA
# title: Effective scopes
# description: >-
#   The scopes the caller may use on this request: those in the token that the
#   agent is also allowed to use (token scopes intersected with agent scopes).
effective_scopes := {s | some s in input.token.scopes; s in input.agent.scopes}

# METADATA
# title: Method of the message
# description: The JSON-RPC method being decided.
default method := ""

method := input.mcp.method

# METADATA
# title: Scope required by this message
# description: tools/call is decided per tool (tool_scope); every other method by its class (method_scope).
required_scope := tool_scope(called_tool) if {
	method == "tools/call"
} else := method_scope(method)

# METADATA
# title: Scope of a method
# description: The read scope for read_methods, the write scope for write_methods; undefined for any other method.
method_scope(m) := data.mcpgw.scopes.read if {
	glob_any(data.mcpgw.scopes.read_methods, m)
} else := data.mcpgw.scopes.write if {
	glob_any(data.mcpgw.scopes.write_methods, m)
}

# METADATA
# title: Scope of a tool call
# description: >-
#   A read-only tool needs only the read scope; any other tool needs what
#   tools/call needs (the write scope by default).
tool_scope(tool) := data.mcpgw.scopes.read if {
	tool_read_only(tool)
} else := method_scope("tools/call")

# METADATA
# title: Every tool scope held
# description: The caller holds both the read scope and the scope tools/call needs.
every_tool_scope_held if {
	data.mcpgw.scopes.read in effective_scopes
	method_scope("tools/call") in effective_scopes
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
read_only_glob := any_of([p |
	some backend in ["*", backend_name]
	some p in object.get(data.mcpgw.read_only_tools, backend, [])
])

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
