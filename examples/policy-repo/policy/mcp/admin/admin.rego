# METADATA
# title: Company admin API policy
# description: >-
#   Decides mcpgw admin API calls over {token, http, admin: {action, kind,
#   name, target?}}: full access for data.company.admin.full_access_roles,
#   list and get for read_roles. Roles as in the gateway policy
#   (data.mcp.roles.caller_roles).
package mcp.admin

import data.mcp.roles.caller_roles

# METADATA
# title: Admin API decision
# entrypoint: true
default allow := false

allow if {
	some role in data.company.admin.full_access_roles
	role in caller_roles
}

allow if {
	input.admin.action in {"list", "get"}
	some role in data.company.admin.read_roles
	role in caller_roles
}
