# METADATA
# title: mcpgw admin API policy
# description: >-
#   Decides calls to the gateway's admin API over input
#   {token, http, admin: {action, kind, name, target?}}. A PUT is the action
#   "write" whether it creates or updates; a backend PUT carries
#   admin.target {url, host, address_class}. The caller's roles are the
#   gateway policy's: data.mcp.roles.caller_roles (policies/mcp/roles/); the
#   admin settings are in data.mcpgw.admin.
package mcp.admin

import data.mcp.roles.caller_roles

# METADATA
# title: Admin API decision
# description: True when one of the caller's roles may perform the action.
# entrypoint: true
default allow := false

# METADATA
# title: Full access
# description: >-
#   A role in data.mcpgw.admin.full_access_roles may perform every action,
#   except pointing a backend at a refused address class.
allow if {
	full_access_role
	not refused_target
}

# METADATA
# title: Read access
# description: A role in data.mcpgw.admin.read_roles may perform the read actions (list, get) only.
allow if {
	read_action
	read_access_role
	not refused_target
}

# METADATA
# title: Refused backend destination
# description: >-
#   The backend url of a write resolves to an address class listed in
#   data.mcpgw.admin.refused_address_classes (by default link-local and
#   cloud metadata services, which hand out the gateway host's own credentials).
refused_target if target_class in object.get(data.mcpgw.admin, "refused_address_classes", [])

# METADATA
# title: Target address class
# description: The address class of the write's backend url; "" when the call has no target.
target_class := object.get(input, ["admin", "target", "address_class"], "")

# METADATA
# title: Reasons
# description: Why the admin call is allowed or refused, for the audit trail.
# entrypoint: true
reasons contains sprintf("%s may do every admin action", [concat(", ", sort(full_roles))]) if {
	not refused_target
	full_roles := {r | some r in data.mcpgw.admin.full_access_roles; r in caller_roles}
	count(full_roles) > 0
}

reasons contains sprintf("%s may %s %s", [concat(", ", sort(read_roles)), action, target]) if {
	not full_access_role
	read_action
	read_roles := {r | some r in data.mcpgw.admin.read_roles; r in caller_roles}
	count(read_roles) > 0
}

reasons contains sprintf("admin action %s on %s requires role %s", [action, target, concat(" or ", needed)]) if {
	not allow
	not refused_target
	needed := needed_roles
}

reasons contains sprintf("backend url host %s is a %s address, which data.mcpgw.admin.refused_address_classes refuses", [host, target_class]) if {
	refused_target
	host := object.get(input, ["admin", "target", "host"], "")
}

# METADATA
# title: Roles that could perform this action
# description: The full-access roles, plus the read roles when the action only reads.
needed_roles := sort(data.mcpgw.admin.full_access_roles) if {
	not read_action
} else := sort(array.concat(data.mcpgw.admin.read_roles, data.mcpgw.admin.full_access_roles))

# METADATA
# title: Caller has a full-access role
# description: One of the caller's roles is in data.mcpgw.admin.full_access_roles.
full_access_role if {
	some role in data.mcpgw.admin.full_access_roles
	role in caller_roles
}

# METADATA
# title: Caller has a read role
# description: One of the caller's roles is in data.mcpgw.admin.read_roles.
read_access_role if {
	some role in data.mcpgw.admin.read_roles
	role in caller_roles
}

# METADATA
# title: Read action
# description: The action only reads (data.mcpgw.admin.read_actions).
read_action if action in data.mcpgw.admin.read_actions

# METADATA
# title: Action
# description: The admin action requested (list, get, write, delete, ...).
action := object.get(input, ["admin", "action"], "")

# METADATA
# title: Target
# description: The kind and, if any, the name of the object acted on, as "kind" or "kind/name".
target := concat("/", [kind, name]) if {
	kind := object.get(input, ["admin", "kind"], "")
	name := object.get(input, ["admin", "name"], "")
	name != ""
} else := object.get(input, ["admin", "kind"], "")
