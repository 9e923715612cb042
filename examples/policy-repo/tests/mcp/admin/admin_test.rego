# Tests of the admin API policy.
package mcp.admin_test

import data.mcp.admin

admin_call(groups, action) := {
	"token": {"sub": "ops@example.com", "groups": groups, "scopes": []},
	"http": {"method": "GET", "path": "/admin/v1/backends"},
	"admin": {"action": action, "kind": "backend", "name": "hr"},
}

# The admin input has no agent or backend: roles come from the token alone.
test_platform_may_write if {
	admin.allow with input as admin_call(["mcp-platform"], "write")
}

test_writer_may_only_read if {
	admin.allow with input as admin_call(["mcp-writers"], "list")
	admin.allow with input as admin_call(["mcp-writers"], "get")
	not admin.allow with input as admin_call(["mcp-writers"], "write")
}

test_reader_may_not if {
	not admin.allow with input as admin_call(["mcp-readers"], "list")
}
