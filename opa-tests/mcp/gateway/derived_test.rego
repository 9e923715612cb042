package mcp.gateway_test

import data.mcp.fixtures
import data.mcp.gateway

# The data-derived indexes (which the gateway works out once per policy
# activation) and the rules that read them.

test_compiled_grants_are_keyed_by_role_backend_kind if {
	gateway.compiled_grants[["viewer", "*", "tools"]] == {"allow": "{get_*,list_*,search_*,echo}", "except": "{}"}
	gateway.compiled_grants[["admin", "*", "tools"]] == {"allow": "*", "except": "delete_*"}
	gateway.compiled_grants[["viewer", "files", "tools"]] == {"allow": "read_file", "except": "{}"}
	not gateway.compiled_grants[["viewer", "employees", "tools"]]
}

test_compiled_grants_skip_malformed_grants if {
	grants := {"r": {"*": {"tools": "get_*", "prompts": {"allow": ["p"]}}, "files": ["x"]}}
	gateway.compiled_grants == {["r", "*", "prompts"]: {"allow": "p", "except": "{}"}} with data.mcpgw.roles.grants as grants
}

test_role_includes_lower_roles if {
	gateway.role_includes == {
		"viewer": {"viewer"},
		"admin": {"viewer", "admin"},
		"super-admin": {"viewer", "admin", "super-admin"},
	}
	gateway.role_includes.auditor == {"auditor"} with data.mcpgw.roles.groups as {"auditors": "auditor"}
}

test_method_patterns_split_names_and_globs if {
	gateway.method_patterns.read.names == {"initialize", "ping", "resources/read", "resources/templates/list", "resources/subscribe", "resources/unsubscribe", "prompts/get", "completion/complete", "server/discover", "logging/setLevel", "tasks/get", "tasks/result"}
	gateway.method_patterns.read.globs == ["*/list", "notifications/*"]
	gateway.method_patterns.write == {"names": {"tools/call", "tasks/cancel"}, "globs": []}
}

test_method_names_match_only_themselves if {
	methods := {"read": "r", "write": "w", "read_methods": ["a.b", "x/[ab]", "{c,d}/list", 7], "write_methods": ["x/a"]}
	gateway.method_patterns.read == {"names": {"a.b"}, "globs": ["x/[ab]", "{c,d}/list", 7]} with data.mcpgw.scopes as methods
	gateway.method_scope("a.b") == "r" with data.mcpgw.scopes as methods
	not gateway.method_scope("a-b") with data.mcpgw.scopes as methods
	gateway.method_scope("x/a") == "r" with data.mcpgw.scopes as methods
	gateway.method_scope("d/list") == "r" with data.mcpgw.scopes as methods
	not gateway.method_scope(7) with data.mcpgw.scopes as methods
}

test_read_only_glob_per_backend if {
	gateway.read_only_globs == {"*": "{get_*,list_*,search_*,echo,get_*,list_*,search_*,echo}", "files": "{get_*,list_*,search_*,echo,read_file}", "notes": "{get_*,list_*,search_*,echo,read_file}"}
	gateway.read_only_glob == "{get_*,list_*,search_*,echo,read_file}" with input as fixtures.call(fixtures.viewers, fixtures.ro, "files", "read_file", {})
	gateway.read_only_glob == "{get_*,list_*,search_*,echo}" with input as fixtures.base
	gateway.read_only_glob == "{}" with data.mcpgw.read_only_tools as {} with input as fixtures.base
}

test_scope_held_needs_token_and_agent if {
	gateway.scope_held("mcp:read") with input as fixtures.base
	not gateway.scope_held("mcp:write") with input as object.union(fixtures.base, {"agent": {"scopes": ["mcp:read"]}})
	not gateway.scope_held("mcp:write") with input as object.union(fixtures.base, {"token": {"scopes": ["mcp:read"]}})
	gateway.call_scope == "mcp:write"
}

test_argument_rules_default_backends if {
	rules := {"wildcard_targets": [{"tools": ["delete_*"]}, "not a rule", {"tools": ["x"], "backends": ["files"]}]}
	gateway.argument_rules_with_backends == {"wildcard_targets": [{"tools": ["delete_*"], "backends": ["*"]}, {"tools": ["x"], "backends": ["files"]}]} with data.mcpgw.argument_rules as rules
}
