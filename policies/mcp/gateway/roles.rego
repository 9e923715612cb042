package mcp.gateway

# METADATA
# title: Role grant required for the call
# description: >-
#   tools/call, resources/read and prompts/get need a role that grants the
#   named item on this backend (permitted). The same rule decides visibility,
#   so a hidden item can never be called. The reason names the least role
#   that would grant the item.
message_denials contains message_denial(role_reason(kind, tool_name)) if {
	kind := call_kinds[method]
	tool_name != ""
	not permitted(kind, tool_name)
}

# METADATA
# title: A call names its target
# description: tools/call, resources/read and prompts/get without a name (or URI) are refused.
message_denials contains message_denial(sprintf("%s names no %s", [method, kind_nouns[kind]])) if {
	tool_name == ""
	kind := call_kinds[method]
}

# METADATA
# title: Permitted item
# description: >-
#   True when one of the caller's grants for this backend and kind ("tools",
#   "resources" or "prompts") matches name: one of its allow patterns does
#   and none of its except patterns does.
permitted(kind, name) if {
	some grant in caller_grants[kind]
	glob.match(grant.allow, null, name)
	not glob.match(grant.except, null, name)
}

# METADATA
# title: Caller grants
# description: >-
#   The grants, per kind, of every role the caller holds, for every backend
#   ("*") and for this backend, each with its allow and except patterns
#   compiled to one glob (compiled_grants). Grants only add up: an except
#   narrows its own grant and never takes away what another grant or an
#   inherited role gives.
caller_grants[kind] contains grant if {
	some role in caller_roles
	some backend in ["*", backend_name]
	grant := compiled_grants[[role, backend, kind]]
}

# METADATA
# title: Compiled grants
# description: >-
#   Every grant of data.mcpgw.roles.grants, compiled (compiled_grant) and
#   keyed by [role, backend, kind]. It reads data only, so the gateway works
#   it out once per policy activation rather than once per decision.
compiled_grants := {[role, backend, kind]: compiled_grant(grant) |
	some role, backends in data.mcpgw.roles.grants
	some backend, kinds in backends
	some kind, grant in kinds
}

# METADATA
# title: Compiled grant
# description: >-
#   A grant's allow and except pattern lists, each as one glob. No except
#   patterns compile to "{}", which only the empty name matches.
compiled_grant(grant) := {
	"allow": any_of(object.get(grant, "allow", [])),
	"except": any_of(object.get(grant, "except", [])),
}

# METADATA
# title: Caller roles
# description: >-
#   The roles the caller's groups map to under its issuer's group mapping
#   (issuer_role_groups), with the roles each of them includes.
caller_roles contains role if {
	some group in caller_groups
	some role in role_includes[issuer_role_groups[group]]
}

# METADATA
# title: Group mapping of the token's issuer
# description: >-
#   Groups are the issuer's: a group name asserted by one IdP says nothing
#   about a group of the same name at another. When the token's issuer has an
#   entry in data.mcpgw.roles.issuer_groups, that entry alone maps its groups
#   to roles (an empty entry: no roles); otherwise data.mcpgw.roles.groups
#   does, which is all a single-issuer gateway needs.
issuer_role_groups := mapping if {
	mapping := data.mcpgw.roles.issuer_groups[token_issuer]
} else := object.get(data.mcpgw.roles, "groups", {})

# METADATA
# title: Inherited roles
# description: >-
#   The roles each role that a group mapping (data.mcpgw.roles.groups or an
#   entry of data.mcpgw.roles.issuer_groups) assigns includes (roles_up_to).
#   It reads data only, so the gateway works it out once per policy
#   activation rather than once per decision.
role_includes := {role: roles_up_to(role) | some role in mapped_roles}

# METADATA
# title: Mapped roles
# description: Every role some group mapping assigns, shared or per issuer.
mapped_roles := {role | some role in object.get(data.mcpgw.roles, "groups", {})} | {role |
	some mapping in object.get(data.mcpgw.roles, "issuer_groups", {})
	some role in mapping
}

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
# title: Least role granting an item
# description: >-
#   The lowest role in the hierarchy that grants the item on this backend;
#   undefined if none does. With inheritance, that is the lowest role whose
#   own grants match.
least_role(kind, name) := data.mcpgw.roles.hierarchy[min(ranks)] if {
	ranks := {rank | some role, rank in role_ranks; role_grants(role, kind, name)}
	count(ranks) > 0
}

# METADATA
# title: Role grants item
# description: True when one of role's own grants matches the named item on this backend.
role_grants(role, kind, name) if {
	some backend in ["*", backend_name]
	grant := compiled_grants[[role, backend, kind]]
	glob.match(grant.allow, null, name)
	not glob.match(grant.except, null, name)
}

# METADATA
# title: Reason for a missing role
# description: A sentence naming the item, the least role that would grant it and the backend.
role_reason(kind, name) := sprintf("%s %s requires role %s on backend %s", [kind_nouns[kind], name, role, backend_name]) if {
	role := least_role(kind, name)
} else := sprintf("%s %s is not granted to any role on backend %s", [kind_nouns[kind], name, backend_name])

# METADATA
# title: Methods that act on one catalog item
# description: The methods whose target must be granted by a role, and the kind of item each names.
call_kinds := {"tools/call": "tools", "resources/read": "resources", "prompts/get": "prompts"}

# METADATA
# title: Nouns for reasons
# description: How reasons name an item of each kind.
kind_nouns := {"tools": "tool", "resources": "resource", "prompts": "prompt"}
