# METADATA
# title: Caller roles
# description: >-
#   The caller's roles, shared by the gateway policy (mcp.gateway) and the
#   admin API policy (mcp.admin): the token's groups mapped by
#   data.company.roles.groups.
package mcp.roles

# METADATA
# title: Caller roles
# description: The roles data.company.roles.groups gives the token's groups.
caller_roles contains data.company.roles.groups[group] if some group in input.token.groups
