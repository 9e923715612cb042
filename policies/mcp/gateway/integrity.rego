package mcp.gateway

# Tool integrity: a backend whose tool_integrity enforces has each listed
# tool, prompt and resource template, and the called tool, classified
# against the definition an administrator approved
# (input.tools[i].integrity = {"status": "approved" | "new" | "changed",
# "changed": [fields], "rejected": bool}). What is not accepted is hidden
# from lists and its calls refused; data.mcpgw.tool_integrity says which
# changes are accepted without review.

# METADATA
# title: Tool integrity enforced
# description: >-
#   The backend's tool_integrity holds back what is not approved: enforce, and
#   trust_on_first_use (which approved the first list it saw). observe and off
#   hold nothing.
integrity_enforced(backend) if backend.tool_integrity in {"enforce", "trust_on_first_use"}

# METADATA
# title: Held by tool integrity
# description: >-
#   A tool or prompt of backend (input.backend), when it enforces, whose
#   definition is not accepted.
#   An entry without a classification is held too: nothing says it was
#   approved.
held(backend, item) if {
	integrity_enforced(backend)
	not integrity_accepted(backend, item)
}

# METADATA
# title: Resource template held by tool integrity
# description: >-
#   A resource template of an enforcing backend whose definition is not
#   accepted. Plain resources carry no classification and are never held.
resource_held(backend, resource) if {
	integrity_enforced(backend)
	resource.integrity
	not integrity_accepted(backend, resource)
}

# METADATA
# title: Approved definition
# description: The definition is the one an administrator (or trust on first use) approved.
integrity_accepted(_, item) if item.integrity.status == "approved"

# METADATA
# title: Change accepted without review
# description: >-
#   A changed definition whose every changed field is one a rule of
#   data.mcpgw.tool_integrity.auto_approve accepts for this backend (e.g.
#   description-only changes of an internal backend: rule.backends matches
#   the backend's name). A rejected definition
#   is never accepted.
integrity_accepted(backend, item) if {
	item.integrity.status == "changed"
	not item.integrity.rejected
	some rule in object.get(data.mcpgw, ["tool_integrity", "auto_approve"], [])
	glob_any(rule.backends, object.get(backend, "name", ""))
	every field in item.integrity.changed {
		field in rule.fields
	}
}

# METADATA
# title: Held tools cannot be called
# description: >-
#   A tools/call of a tool held by tool integrity is refused, naming what the
#   gateway saw: a new tool, or which fields changed since approval.
message_denials contains message_denial(sprintf(
	"tool %s of backend %s is held by tool integrity (%s): an administrator has to approve it",
	[tool_name, backend_name, integrity_summary(called_tool)],
)) if {
	method == "tools/call"
	tool_name != ""
	held(input.backend, called_tool)
}

# METADATA
# title: Held prompts cannot be got
# description: >-
#   A prompts/get of a prompt held by tool integrity is refused, as lists hide
#   it: the gateway classifies the requested prompt by the definition last
#   listed (a prompt never listed is new).
message_denials contains message_denial(sprintf(
	"prompt %s of backend %s is held by tool integrity (%s): an administrator has to approve it",
	[tool_name, backend_name, integrity_summary(requested)],
)) if {
	method == "prompts/get"
	some requested in input.prompts
	requested.name == tool_name
	held(input.backend, requested)
}

# METADATA
# title: Integrity summary
# description: The classification of an entry as text, such as changed with its fields, or new.
integrity_summary(item) := sprintf("changed: %s", [concat(", ", item.integrity.changed)]) if {
	item.integrity.status == "changed"
} else := object.get(item, ["integrity", "status"], "not classified")
