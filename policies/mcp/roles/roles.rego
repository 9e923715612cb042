# METADATA
# title: Caller roles
# description: >-
#   Who the caller is, for both policies: the gateway policy (mcp.gateway)
#   and the admin API policy (mcp.admin) decide on the roles here. The
#   token's groups map to roles under its issuer's group mapping
#   (data.mcpgw.roles.groups, or an entry of data.mcpgw.roles.issuer_groups),
#   and a role in data.mcpgw.roles.hierarchy includes every role below it.
package mcp.roles

# METADATA
# title: Caller roles
# description: >-
#   The roles the caller's groups map to under its issuer's group mapping
#   (group_mapping), with the roles each of them includes (roles_up_to).
caller_roles contains role if {
	some group in caller_groups
	some role in roles_up_to(group_mapping(token_issuer)[group])
}

# METADATA
# title: Group mapping of an issuer
# description: >-
#   Groups are the issuer's: a group name asserted by one IdP says nothing
#   about a group of the same name at another. When the issuer has an entry
#   in data.mcpgw.roles.issuer_groups, that entry alone maps its groups to
#   roles (an empty entry: no roles); otherwise data.mcpgw.roles.groups
#   does, which is all a single-issuer gateway needs.
group_mapping(issuer) := mapping if {
	mapping := data.mcpgw.roles.issuer_groups[issuer]
} else := object.get(data.mcpgw.roles, "groups", {})

# METADATA
# title: Roles up to a role
# description: >-
#   The role itself and, when it is in data.mcpgw.roles.hierarchy (lowest
#   first), every role below it: viewer < admin < super-admin.
roles_up_to(role) := {role} | {lower | some lower, lower_rank in role_ranks; lower_rank < role_ranks[role]}

# METADATA
# title: Role ranks
# description: Each role's position in data.mcpgw.roles.hierarchy, lowest first.
role_ranks := {role: rank | some rank, role in data.mcpgw.roles.hierarchy}

# METADATA
# title: Caller groups
# description: The groups of the token's subject (input.token.groups), as verified by the gateway.
default caller_groups := []

caller_groups := input.token.groups

# METADATA
# title: Token's issuer
# description: >-
#   The token's iss (input.token.iss), as verified by the gateway, or "".
#   Groups, roles and client ids mean something only within the issuer
#   that asserted them.
default token_issuer := ""

token_issuer := input.token.iss
