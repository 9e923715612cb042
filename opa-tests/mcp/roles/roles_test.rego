package mcp.roles_test

import data.mcp.fixtures
import data.mcp.roles

# Who the caller is: the roles both policies decide on.

test_caller_roles_include_lower_roles if {
	roles.caller_roles == {"viewer", "admin", "super-admin"} with input as fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "x", {})
	roles.caller_roles == {"viewer", "admin"} with input as fixtures.call(["mcp-admins", "mcp-viewers"], fixtures.rw, "employees", "x", {})
	roles.caller_roles == {"viewer", "admin", "super-admin"} with input as fixtures.admin_request(fixtures.super_admins, "list", "agents", "")
}

test_roles_up_to_a_role if {
	roles.roles_up_to("viewer") == {"viewer"}
	roles.roles_up_to("admin") == {"viewer", "admin"}
	roles.roles_up_to("super-admin") == {"viewer", "admin", "super-admin"}
	roles.roles_up_to("auditor") == {"auditor"}
	roles.caller_roles == {"auditor"} with input as fixtures.call(["auditors"], fixtures.rw, "employees", "x", {}) with data.mcpgw.roles.groups as {"auditors": "auditor"}
}

test_group_mapping_is_the_issuers_else_the_shared_one if {
	roles.group_mapping("https://idp.example.com") == data.mcpgw.roles.groups
	roles.group_mapping("b") == {"x": "viewer"} with data.mcpgw.roles.issuer_groups as {"b": {"x": "viewer"}}
	roles.group_mapping("b") == {} with data.mcpgw.roles.issuer_groups as {"b": {}}
	roles.group_mapping("b") == {} with data.mcpgw.roles as {"hierarchy": []}
}

test_token_without_groups_or_issuer if {
	roles.caller_roles == set() with input as {}
	roles.caller_groups == [] with input as {}
	roles.token_issuer == "" with input as {}
	roles.caller_roles == {"viewer"} with input as {"token": {"groups": ["mcp-viewers"]}}
}
