# Tests of the gateway policy: opa test policy tests --coverage
package mcp.gateway_test

import data.mcp.gateway

# A reader calling a read tool on the hr backend through Cursor.
base := {
	"version": 1,
	"token": {"sub": "alice@example.com", "scopes": ["mcp:read"], "groups": ["mcp-readers"], "claims": {}},
	"agent": {"id": "cursor", "enabled": true, "backend_access": ["hr"]},
	"backend": {"name": "hr", "auth_type": "okta-cross-app", "labels": {}},
	"mcp": {"kind": "request", "method": "tools/call", "tool": "get_employee", "arguments": {"id": "e1"}},
	"http": {"method": "POST", "path": "/hr"},
	"tools": [
		{"name": "get_employee", "annotations": {"readOnlyHint": true}},
		{"name": "update_employee", "annotations": {}},
		{"name": "delete_employee", "annotations": {"destructiveHint": true}},
	],
	"resources": [{"uri": "hr://handbook"}],
	"prompts": [{"name": "summarize"}],
}

# with returns base with the given fields of token and mcp replaced.
with_call(groups, scopes, tool) := object.union(base, {
	"token": {"groups": groups, "scopes": scopes},
	"mcp": {"tool": tool},
})

test_reader_calls_read_tool if {
	gateway.decision == {"allow": true, "reasons": [], "status": 0} with input as base
}

test_reader_may_not_update if {
	d := gateway.decision with input as with_call(["mcp-readers"], ["mcp:read", "mcp:write"], "update_employee")
	not d.allow
	d.status == 0
	d.reasons == ["no role may call update_employee on hr"]
}

test_writer_updates_with_write_scope if {
	gateway.decision.allow with input as with_call(["mcp-writers"], ["mcp:read", "mcp:write"], "update_employee")
}

test_write_tool_without_write_scope_is_403_with_scope if {
	d := gateway.decision with input as with_call(["mcp-writers"], ["mcp:read"], "update_employee")
	d == {"allow": false, "reasons": ["missing scope mcp:write"], "status": 403, "scope": "mcp:write"}
}

test_nobody_but_platform_deletes if {
	not gateway.decision.allow with input as with_call(["mcp-writers"], ["mcp:read", "mcp:write"], "delete_employee")
	gateway.decision.allow with input as with_call(["mcp-platform"], ["mcp:read", "mcp:write"], "delete_employee")
}

test_read_method_needs_read_scope if {
	list := object.union(base, {"mcp": {"method": "tools/list"}, "token": {"scopes": []}})
	gateway.decision.scope == "mcp:read" with input as list
}

test_unknown_group_has_no_role if {
	d := gateway.decision with input as with_call(["everyone"], ["mcp:read"], "get_employee")
	"no role: the token's groups map to none" in d.reasons
	d.status == 403
}

test_agent_backend_access if {
	d := gateway.decision with input as object.union(base, {"backend": {"name": "finance"}})
	"agent cursor may not use backend finance" in d.reasons
}

test_input_version if {
	d := gateway.decision with input as object.union(base, {"version": 2})
	"unsupported policy input version" in d.reasons
}

test_stream_needs_no_scope if {
	stream := object.union(base, {"mcp": {"kind": "stream", "method": "GET"}, "token": {"scopes": []}})
	gateway.decision.allow with input as stream
}

test_visible_tools_by_role_and_scope if {
	gateway.visible_tools == {"get_employee"} with input as base
	gateway.visible_tools == {"get_employee", "update_employee"} with input as with_call(["mcp-writers"], ["mcp:read", "mcp:write"], "x")
	gateway.visible_tools == {"get_employee"} with input as with_call(["mcp-writers"], ["mcp:read"], "x")
	count(gateway.visible_tools) == 0 with input as with_call(["everyone"], ["mcp:read"], "x")
}

test_visible_resources_and_prompts_need_read_scope if {
	gateway.visible_resources == {"hr://handbook"} with input as base
	gateway.visible_prompts == {"summarize"} with input as base
	count(gateway.visible_resources) == 0 with input as with_call(["mcp-readers"], [], "x")
	count(gateway.visible_prompts) == 0 with input as with_call(["mcp-readers"], [], "x")
}
