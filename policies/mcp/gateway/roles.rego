package mcp.gateway

# METADATA
# title: Role grant required for the call
# description: >-
#   tools/call, resources/read and prompts/get need a role that grants the
#   named item on this backend (permitted). The same rule decides visibility,
#   so a hidden item can never be called. The reason names the least role
#   that would grant the item.
message_denials contains message_denial(role_reason(backend_name, kind, tool_name)) if {
	kind := call_kinds[method]
	tool_name != ""
	not permitted(caller_grants[kind], tool_name)
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
#   True when one of grants (compiled, as in caller_grants) matches name:
#   its allow glob does and its except glob does not.
permitted(grants, name) if {
	some grant in grants
	glob.match(grant.allow, null, name)
	not glob.match(grant.except, null, name)
}

# METADATA
# title: Caller grants
# description: >-
#   For each kind ("tools", "resources" and "prompts"), the grants of every
#   role the caller holds (data.mcp.roles.caller_roles), for every backend
#   ("*") and for this backend, each compiled (compiled_grant); an empty set
#   when none. Grants only add up: an except narrows its own grant and never
#   takes away what another grant or an inherited role gives.
caller_grants[kind] := {compiled_grant(grant) |
	some role in data.mcp.roles.caller_roles
	some backend in ["*", backend_name]
	grant := data.mcpgw.roles.grants[role][backend][kind]
} if {
	some kind, _ in kind_nouns
}

# METADATA
# title: Compiled grant
# description: >-
#   A grant's allow and except pattern lists, each as one glob (any_of). No
#   except patterns compile to "{}", which only the empty name matches.
compiled_grant(grant) := {
	"allow": any_of(object.get(grant, "allow", [])),
	"except": any_of(object.get(grant, "except", [])),
}

# METADATA
# title: Least role granting an item
# description: >-
#   The lowest role in the hierarchy that grants the item on backend;
#   undefined if none does. With inheritance, that is the lowest role whose
#   own grants match.
least_role(backend, kind, name) := data.mcpgw.roles.hierarchy[min(ranks)] if {
	ranks := {rank | some role, rank in data.mcp.roles.role_ranks; role_grants(role, backend, kind, name)}
	count(ranks) > 0
}

# METADATA
# title: Role grants item
# description: True when one of role's own grants matches the named item on backend.
role_grants(role, backend, kind, name) if {
	some b in ["*", backend]
	permitted({compiled_grant(data.mcpgw.roles.grants[role][b][kind])}, name)
}

# METADATA
# title: Reason for a missing role
# description: A sentence naming the item, the least role that would grant it on backend, and backend.
role_reason(backend, kind, name) := sprintf("%s %s requires role %s on backend %s", [kind_nouns[kind], name, role, backend]) if {
	role := least_role(backend, kind, name)
} else := sprintf("%s %s is not granted to any role on backend %s", [kind_nouns[kind], name, backend])

# METADATA
# title: Methods that act on one catalog item
# description: The methods whose target must be granted by a role, and the kind of item each names.
call_kinds := {"tools/call": "tools", "resources/read": "resources", "prompts/get": "prompts"}

# METADATA
# title: Nouns for reasons
# description: How reasons name an item of each kind.
kind_nouns := {"tools": "tool", "resources": "resource", "prompts": "prompt"}
