# Tests of the shared caller roles.
package mcp.roles_test

import data.mcp.roles

test_groups_map_to_roles if {
	roles.caller_roles == {"platform"} with input as {"token": {"groups": ["mcp-platform", "unmapped"]}}
	roles.caller_roles == set() with input as {"token": {"groups": []}}
	roles.caller_roles == set() with input as {}
}
