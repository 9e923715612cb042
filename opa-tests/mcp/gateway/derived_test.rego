package mcp.gateway_test

import data.mcp.fixtures
import data.mcp.gateway

# Building blocks the rules share: the caller's grants, method and tool
# scopes, argument rules.

test_caller_grants_are_the_roles_grants_for_this_backend if {
	viewer_tools := {"allow": "{get_*,list_*,search_*,echo}", "except": "{}"}
	gateway.caller_grants.tools == {viewer_tools} with input as fixtures.base
	gateway.caller_grants.tools == {viewer_tools, {"allow": "read_file", "except": "{}"}} with input as fixtures.call(fixtures.viewers, fixtures.ro, "files", "read_file", {})
	gateway.caller_grants.tools == {viewer_tools, {"allow": "*", "except": "delete_*"}} with input as fixtures.call(fixtures.admins, fixtures.rw, "employees", "x", {})
	gateway.caller_grants.resources == {{"allow": "*", "except": "{}"}} with input as fixtures.base
	gateway.caller_grants == {"tools": set(), "resources": set(), "prompts": set()} with input as fixtures.call([], fixtures.rw, "employees", "x", {})
}

test_caller_grants_skip_malformed_grants if {
	grants := {"r": {"*": {"tools": "get_*", "prompts": {"allow": ["p"]}}, "files": ["x"]}}
	req := fixtures.call(["g"], fixtures.rw, "files", "x", {})
	gateway.caller_grants == {"tools": set(), "resources": set(), "prompts": {{"allow": "p", "except": "{}"}}} with input as req with data.mcpgw.roles.grants as grants with data.mcpgw.roles.groups as {"g": "r"}
}

test_methods_of_each_class if {
	every m in data.mcpgw.scopes.read_methods {
		gateway.method_scope(m) == "mcp:read"
	}
	every m in ["tools/call", "tasks/cancel"] {
		gateway.method_scope(m) == "mcp:write"
	}
	gateway.method_scope("tools/list") == "mcp:read"
	gateway.method_scope("notifications/initialized") == "mcp:read"
	not gateway.method_scope("sampling/createMessage")
}

test_method_names_match_only_themselves if {
	methods := {"read": "r", "write": "w", "read_methods": ["a.b", "x/[ab]", "{c,d}/list", 7], "write_methods": ["x/a"]}
	gateway.method_scope("a.b") == "r" with data.mcpgw.scopes as methods
	not gateway.method_scope("a-b") with data.mcpgw.scopes as methods
	gateway.method_scope("x/a") == "r" with data.mcpgw.scopes as methods
	gateway.method_scope("d/list") == "r" with data.mcpgw.scopes as methods
	not gateway.required_scope with data.mcpgw.scopes as methods with input as object.union(fixtures.base, {"mcp": {"method": 7}})
}

test_read_only_glob_per_backend if {
	gateway.read_only_patterns("*") == ["get_*", "list_*", "search_*", "echo", "get_*", "list_*", "search_*", "echo"]
	gateway.read_only_patterns("files") == ["get_*", "list_*", "search_*", "echo", "read_file"]
	gateway.read_only_patterns("employees") == ["get_*", "list_*", "search_*", "echo"]
	gateway.read_only_glob == "{get_*,list_*,search_*,echo,read_file}" with input as fixtures.call(fixtures.viewers, fixtures.ro, "files", "read_file", {})
	gateway.read_only_glob == "{get_*,list_*,search_*,echo}" with input as fixtures.base
	gateway.read_only_glob == "{}" with data.mcpgw.read_only_tools as {} with input as fixtures.base
}

test_scope_held_needs_token_and_agent if {
	"mcp:read" in gateway.effective_scopes with input as fixtures.base
	not "mcp:write" in gateway.effective_scopes with input as object.union(fixtures.base, {"agent": {"scopes": ["mcp:read"]}})
	not "mcp:write" in gateway.effective_scopes with input as object.union(fixtures.base, {"token": {"scopes": ["mcp:read"]}})
	gateway.call_scope == "mcp:write"
}

test_argument_rules_default_backends if {
	rules := {"wildcard_targets": [{"tools": ["delete_*"]}, "not a rule", {"tools": ["x"], "backends": ["files"]}]}
	gateway.active_argument_rules == {"wildcard_targets": {{"tools": ["delete_*"]}}} with data.mcpgw.argument_rules as rules
		with input as fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "delete_employee", {})
	gateway.active_argument_rules == {"wildcard_targets": {{"tools": ["x"], "backends": ["files"]}}} with data.mcpgw.argument_rules as rules
		with input as fixtures.call(fixtures.super_admins, fixtures.rw, "files", "x", {})
	gateway.active_argument_rules == {"wildcard_targets": set()} with data.mcpgw.argument_rules as rules
		with input as fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "x", {})
}
