# Shared inputs for the gateway and admin policy tests.
package mcp.fixtures

# A viewer calling a read-only tool on the employees backend through Cursor.
base := {
	"version": 1,
	"token": {
		"sub": "alice@example.com",
		"iss": "https://idp.example.com",
		"aud": ["api://mcpgw"],
		"client_id": "cursor-client",
		"scopes": ["mcp:read", "mcp:write"],
		"groups": ["mcp-viewers"],
		"claims": {},
	},
	"agent": {
		"id": "cursor",
		"client_id": "cursor-client",
		"enabled": true,
		"scopes": ["mcp:read", "mcp:write"],
		"backend_access": ["employees", "files", "finance"],
	},
	"backend": {"name": "employees", "auth_type": "okta-cross-app", "labels": {}},
	"mcp": {"kind": "request", "method": "tools/call", "tool": "get_employee", "arguments": {"employee_id": "e-1001"}, "protocol_version": "2025-06-18"},
	"http": {"method": "POST", "path": "/employees", "remote_addr": "127.0.0.1:40000"},
	"tools": employee_tools,
}

employee_tools := [
	{"name": "get_employee", "annotations": {"readOnlyHint": true}},
	{"name": "list_employees", "annotations": {"readOnlyHint": true}},
	{"name": "search_employees", "annotations": {"readOnlyHint": true}},
	{"name": "update_employee", "annotations": {"readOnlyHint": false}},
	{"name": "delete_employee", "annotations": {"destructiveHint": true}},
]

file_tools := [
	{"name": "echo", "annotations": {}},
	{"name": "read_file", "annotations": {}},
	{"name": "write_file", "annotations": {}},
	{"name": "list_files", "annotations": {}},
	{"name": "add", "annotations": {}},
	{"name": "long_running", "annotations": {}},
]

# A tools/call by a member of groups holding scopes.
call(groups, scopes, backend, tool, arguments) := object.union(base, {
	"token": {"groups": groups, "scopes": scopes},
	"backend": {"name": backend},
	"mcp": {"method": "tools/call", "tool": tool, "arguments": arguments},
	"tools": tools_of(backend),
})

# Any other method by a member of groups holding scopes.
request(groups, scopes, method_name, target) := object.union(base, {
	"token": {"groups": groups, "scopes": scopes},
	"mcp": {"method": method_name, "tool": target, "arguments": {}},
})

# Session traffic of kind (response, stream or close) by a member of groups
# holding scopes, as the gateway describes it: a response is POSTed and has
# no method, a stream is a GET and a close a DELETE.
session(groups, scopes, kind) := object.union(base, {
	"token": {"groups": groups, "scopes": scopes},
	"mcp": {"kind": kind, "method": session_http[kind].mcp, "tool": "", "arguments": {}},
	"http": {"method": session_http[kind].http},
})

session_http := {
	"response": {"mcp": "", "http": "POST"},
	"stream": {"mcp": "GET", "http": "GET"},
	"close": {"mcp": "DELETE", "http": "DELETE"},
}

session_kinds := ["response", "stream", "close"]

tools_of("employees") := employee_tools

tools_of(backend) := file_tools if backend != "employees"

rw := ["mcp:read", "mcp:write"]

ro := ["mcp:read"]

viewers := ["mcp-viewers"]

admins := ["mcp-admins"]

super_admins := ["mcp-super-admins"]

# An admin API request.
admin_request(groups, action, kind, name) := {
	"token": {"sub": "bob@example.com", "groups": groups, "scopes": ro},
	"http": {"method": "GET", "path": "/admin/v1/agents"},
	"admin": {"action": action, "kind": kind, "name": name},
}

# A tools/call of "echo" by a member of groups on backend, whose
# tool_integrity is enforce.
enforcing(groups, backend) := object.union(base, {
	"token": {"groups": groups, "scopes": rw},
	"backend": {"name": backend, "tool_integrity": "enforce"},
	"mcp": {"method": "tools/call", "tool": "echo", "arguments": {}},
})
