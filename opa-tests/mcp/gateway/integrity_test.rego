package mcp.gateway_test

import data.mcp.fixtures
import data.mcp.gateway

approved := {"status": "approved", "changed": [], "rejected": false}

new := {"status": "new", "changed": [], "rejected": false}

changed(fields) := {"status": "changed", "changed": fields, "rejected": false}

tool(name, integrity) := {"name": name, "description": "Echo a message back", "annotations": {"readOnlyHint": true}, "integrity": integrity}

# A super-admin's tools/call of echo on notes, in mode, with entries tools.
call(mode, tools) := object.union(fixtures.enforcing(fixtures.super_admins, "notes"), {"backend": {"tool_integrity": mode}, "tools": tools})

# --- enforce ------------------------------------------------------------------

test_enforce_lists_only_approved_tools if {
	tools := [tool("echo", changed(["description"])), tool("add", approved), tool("list_files", new)]
	gateway.visible_tools == {"add"} with input as call("enforce", tools)
}

test_enforce_refuses_a_changed_tool_naming_the_fields if {
	d := gateway.decision with input as call("enforce", [tool("echo", changed(["description", "inputSchema"]))])
	d.allow == false
	d.reasons == ["tool echo of backend notes is held by tool integrity (changed: description, inputSchema): an administrator has to approve it"]
}

test_enforce_refuses_a_new_tool if {
	d := gateway.decision with input as call("enforce", [tool("echo", new)])
	d.reasons == ["tool echo of backend notes is held by tool integrity (new): an administrator has to approve it"]
}

test_enforce_refuses_an_unclassified_tool if {
	d := gateway.decision with input as call("enforce", [{"name": "echo", "annotations": {}}])
	d.reasons == ["tool echo of backend notes is held by tool integrity (not classified): an administrator has to approve it"]
}

test_enforce_allows_an_approved_tool if {
	gateway.decision.allow with input as call("enforce", [tool("echo", approved)])
}

test_trust_on_first_use_enforces_too if {
	not gateway.decision.allow with input as call("trust_on_first_use", [tool("echo", new)])
}

# --- observe and off hold nothing ----------------------------------------------

test_observe_and_off_hold_nothing if {
	every mode in ["observe", "off"] {
		gateway.decision.allow with input as call(mode, [tool("echo", changed(["description"]))])
		gateway.visible_tools == {"echo"} with input as call(mode, [tool("echo", new)])
	}
}

# --- data decides which changes need no review -----------------------------------

auto_approve_descriptions := {"backends": ["notes"], "fields": ["description", "title"]}

test_auto_approve_accepts_listed_fields_only if {
	gateway.decision.allow with input as call("enforce", [tool("echo", changed(["description"]))])
		with data.mcpgw.tool_integrity.auto_approve as [auto_approve_descriptions]
	not gateway.decision.allow with input as call("enforce", [tool("echo", changed(["description", "inputSchema"]))])
		with data.mcpgw.tool_integrity.auto_approve as [auto_approve_descriptions]
}

test_auto_approve_is_per_backend if {
	req := object.union(call("enforce", [tool("echo", changed(["description"]))]), {"backend": {"name": "files"}})
	not gateway.decision.allow with input as req
		with data.mcpgw.tool_integrity.auto_approve as [auto_approve_descriptions]
}

test_auto_approve_never_accepts_a_rejected_change if {
	rejected := {"status": "changed", "changed": ["description"], "rejected": true}
	not gateway.decision.allow with input as call("enforce", [tool("echo", rejected)])
		with data.mcpgw.tool_integrity.auto_approve as [auto_approve_descriptions]
}

# --- prompts and resource templates ------------------------------------------------

test_enforce_hides_unapproved_prompts_and_templates if {
	req := object.union(call("enforce", []), {"mcp": {"method": "prompts/list", "tool": ""}, "prompts": [
		{"name": "summarize", "integrity": approved},
		{"name": "draft", "integrity": changed(["description"])},
	]})
	gateway.visible_prompts == {"summarize"} with input as req
	res := object.union(call("enforce", []), {"mcp": {"method": "resources/templates/list", "tool": ""}, "resources": [
		{"uri": "file:///{path}", "name": "file", "integrity": new},
		{"uri": "notes://{id}", "name": "note", "integrity": approved},
		{"uri": "file:///srv/a.txt", "name": "plain resource"},
	]})
	gateway.visible_resources == {"notes://{id}", "file:///srv/a.txt"} with input as res
}

# --- prompts/get ------------------------------------------------------------

# A super-admin's prompts/get of review on notes, in mode, with the requested prompt's entry.
get_prompt(mode, prompts) := object.union(
	fixtures.enforcing(fixtures.super_admins, "notes"),
	{"backend": {"tool_integrity": mode}, "mcp": {"method": "prompts/get", "tool": "review", "arguments": {}}, "prompts": prompts},
)

test_enforce_refuses_a_changed_prompt if {
	d := gateway.decision with input as get_prompt("enforce", [{"name": "review", "integrity": changed(["description"])}])
	d.allow == false
	d.reasons == ["prompt review of backend notes is held by tool integrity (changed: description): an administrator has to approve it"]
}

test_enforce_refuses_a_prompt_no_list_showed if {
	d := gateway.decision with input as get_prompt("enforce", [{"name": "review", "integrity": new}])
	d.reasons == ["prompt review of backend notes is held by tool integrity (new): an administrator has to approve it"]
}

test_enforce_allows_an_approved_prompt if {
	gateway.decision.allow with input as get_prompt("enforce", [{"name": "review", "integrity": approved}])
}

test_observe_never_holds_a_prompt if {
	gateway.decision.allow with input as get_prompt("observe", [{"name": "review", "integrity": changed(["description"])}])
}

test_prompt_entry_of_another_name_does_not_hold if {
	gateway.decision.allow with input as get_prompt("enforce", [{"name": "other", "integrity": new}])
}
