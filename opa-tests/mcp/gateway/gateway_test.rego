package mcp.gateway_test

import data.mcp.fixtures
import data.mcp.gateway
import data.mcp.roles

# --- decision shape ---------------------------------------------------------

test_allowed_decision_has_no_reasons if {
	d := gateway.decision with input as fixtures.base
	object.remove(d, ["obligations"]) == {"allow": true, "reasons": [], "status": 0}
}

test_transport_status_wins_over_message_status if {
	req := object.union(fixtures.call(fixtures.viewers, fixtures.rw, "employees", "delete_employee", {"employee_id": "*"}), {"agent": {"enabled": false}})
	d := gateway.decision with input as req
	d.allow == false
	d.status == 403
	d.reasons == [
		"agent cursor is disabled",
		"argument employee_id of tool delete_employee must name one target: empty values and wildcards (* %) are refused",
		"tool delete_employee requires role super-admin on backend employees",
	]
	not d.scope
}

test_missing_scope_names_the_scope if {
	d := gateway.decision with input as fixtures.call(fixtures.admins, fixtures.ro, "employees", "update_employee", {"employee_id": "e-1"})
	d == {"allow": false, "reasons": ["missing scope mcp:write"], "status": 403, "scope": "mcp:write"}
}

# --- caller checks ----------------------------------------------------------

test_input_version_must_match if {
	d := gateway.decision with input as object.union(fixtures.base, {"version": 2})
	d.reasons == ["policy expects input version 1, got 2"]
	d.status == 403
}

test_input_version_must_be_present if {
	d := gateway.decision with input as object.remove(fixtures.base, ["version"])
	d.reasons == ["policy expects input version 1, got null"]
}

test_agent_must_be_identified if {
	d := gateway.decision with input as object.union(fixtures.base, {"agent": {"id": ""}})
	d.reasons == ["no agent identified (X-Agent-ID is missing)"]
	d.status == 403
}

test_agent_id_may_be_absent if {
	d := gateway.decision with input as json.remove(fixtures.base, ["agent/id"])
	d.reasons == ["no agent identified (X-Agent-ID is missing)"]
}

test_call_must_name_its_target if {
	d := gateway.decision with input as json.remove(fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "", {}), ["mcp/tool"])
	d == {"allow": false, "reasons": ["tools/call names no tool"], "status": 0}
	e := gateway.decision with input as fixtures.request(fixtures.viewers, fixtures.ro, "resources/read", "")
	e.reasons == ["resources/read names no resource"]
}

test_agent_must_be_enabled if {
	d := gateway.decision with input as object.union(fixtures.base, {"agent": {"enabled": false}})
	d.reasons == ["agent cursor is disabled"]
	d.status == 403
}

test_agent_without_enabled_flag_is_disabled if {
	d := gateway.decision with input as json.remove(fixtures.base, ["agent/enabled"])
	d.reasons == ["agent cursor is disabled"]
}

test_agent_bound_to_token_client if {
	d := gateway.decision with input as object.union(fixtures.base, {"token": {"client_id": "other-client"}})
	d.reasons == ["agent cursor is bound to client cursor-client, but the token was issued to client other-client"]
	d.status == 403
}

# A token of the gateway's own authorization server names the client that
# registered there; the gateway bound it to the agent at registration.
test_gateway_issued_token_is_bound_by_registration if {
	via := object.union(fixtures.base, {"token": {"client_id": "mcpgw-registered", "via": "https://gw.example.com"}})
	gateway.decision.allow with input as via

	# The same client ids without via stay refused.
	not gateway.decision.allow with input as json.remove(via, ["token/via"])
}

test_agent_without_client_takes_tokens_of_any_client if {
	gateway.decision.allow with input as object.union(fixtures.base, {"agent": {"client_id": ""}})
}

test_backend_restricted_to_group if {
	req := object.union(fixtures.request(fixtures.viewers, fixtures.ro, "tools/list", ""), {"backend": {"name": "finance"}})
	d := gateway.decision with input as req
	d.reasons == ["backend finance is restricted to members of finance"]
	d.status == 403
}

test_backend_group_member_passes if {
	req := object.union(fixtures.request(["mcp-viewers", "finance"], fixtures.ro, "tools/list", ""), {"backend": {"name": "finance"}})
	gateway.decision.allow with input as req
}

test_missing_token_fields_fail_closed if {
	d := gateway.decision with input as {"version": 1, "agent": {"id": "cursor", "enabled": true}}
	d.allow == false
	d.reasons == ["method  is not allowed by policy", "the token proves no client, and agent cursor does not take tokens without one (allow_clientless_tokens)"]
}

# --- scopes -----------------------------------------------------------------

test_read_methods_need_read_scope if {
	every m in ["initialize", "ping", "tools/list", "resources/list", "prompts/list", "resources/templates/list", "completion/complete", "server/discover", "logging/setLevel", "notifications/initialized", "notifications/cancelled"] {
		d := gateway.decision with input as fixtures.request(fixtures.viewers, [], m, "")
		d == {"allow": false, "reasons": ["missing scope mcp:read"], "status": 403, "scope": "mcp:read"}
		gateway.decision.allow with input as fixtures.request(fixtures.viewers, fixtures.ro, m, "")
	}
}

test_write_methods_need_write_scope if {
	d := gateway.decision with input as fixtures.request(fixtures.viewers, fixtures.ro, "tasks/cancel", "")
	d.scope == "mcp:write"
	gateway.decision.allow with input as fixtures.request(fixtures.viewers, fixtures.rw, "tasks/cancel", "")
}

test_unknown_method_is_refused if {
	d := gateway.decision with input as fixtures.request(fixtures.super_admins, fixtures.rw, "sampling/createMessage", "")
	d == {"allow": false, "reasons": ["method sampling/createMessage is not allowed by policy"], "status": 0}
}

test_effective_scopes_are_token_and_agent if {
	req := object.union(fixtures.call(fixtures.admins, fixtures.rw, "employees", "update_employee", {"employee_id": "e-1"}), {"agent": {"scopes": ["mcp:read"]}})
	d := gateway.decision with input as req
	d.scope == "mcp:write"
	gateway.effective_scopes == {"mcp:read"} with input as req
}

test_agent_without_scopes_leaves_them_to_the_token if {
	without := object.remove(fixtures.call(fixtures.admins, fixtures.rw, "employees", "update_employee", {"employee_id": "e-1"}), ["agent"])
	req := object.union(without, {"agent": object.remove(fixtures.base.agent, ["scopes"])})
	gateway.decision.allow with input as req
	gateway.effective_scopes == {"mcp:read", "mcp:write"} with input as req
	nulled := object.union(req, {"agent": {"scopes": null}})
	gateway.decision.allow with input as nulled
}

test_agent_with_empty_scopes_may_use_none if {
	req := object.union(fixtures.call(fixtures.admins, fixtures.rw, "employees", "get_employee", {"employee_id": "e-1"}), {"agent": {"scopes": []}})
	d := gateway.decision with input as req
	d == {"allow": false, "reasons": ["missing scope mcp:read"], "status": 403, "scope": "mcp:read"}
	count(gateway.effective_scopes) == 0 with input as req
}

test_read_only_tool_needs_only_read_scope if {
	gateway.decision.allow with input as fixtures.call(fixtures.viewers, fixtures.ro, "employees", "get_employee", {"employee_id": "e-1"})
}

test_read_only_hint_marks_tool_read_only if {
	req := object.union(fixtures.call(fixtures.admins, fixtures.ro, "employees", "export_report", {}), {"tools": [{"name": "export_report", "annotations": {"readOnlyHint": true}}]})
	gateway.decision.allow with input as req
	d := gateway.decision with input as req with data.mcpgw.trust_read_only_hint as false
	d.scope == "mcp:write"
}

test_first_catalog_entry_wins if {
	tools := [{"name": "export_report", "annotations": {"readOnlyHint": true}}, {"name": "export_report", "annotations": {}}]
	req := object.union(fixtures.call(fixtures.admins, fixtures.ro, "employees", "export_report", {}), {"tools": tools})
	gateway.decision.allow with input as req
}

test_tool_without_catalog_entry_needs_write if {
	req := object.union(fixtures.call(fixtures.admins, fixtures.ro, "employees", "export_report", {}), {"tools": []})
	d := gateway.decision with input as req
	d.scope == "mcp:write"
}

test_read_only_tools_listed_in_data if {
	gateway.decision.allow with input as fixtures.call(fixtures.viewers, fixtures.ro, "files", "read_file", {"path": "notes/a.txt"})
	gateway.decision.allow with input as fixtures.call(fixtures.viewers, fixtures.ro, "files", "echo", {"message": "hi"})
	d := gateway.decision with input as fixtures.call(fixtures.admins, fixtures.ro, "files", "write_file", {"path": "notes/a.txt"})
	d.scope == "mcp:write"
}

# --- roles ------------------------------------------------------------------

test_viewer_calls_viewer_tools if {
	every tool in ["get_employee", "list_employees", "search_employees"] {
		gateway.decision.allow with input as fixtures.call(fixtures.viewers, fixtures.ro, "employees", tool, {})
	}
}

test_viewer_cannot_update if {
	d := gateway.decision with input as fixtures.call(fixtures.viewers, fixtures.rw, "employees", "update_employee", {"employee_id": "e-1"})
	d == {"allow": false, "reasons": ["tool update_employee requires role admin on backend employees"], "status": 0}
}

test_admin_inherits_and_updates_but_cannot_delete if {
	gateway.decision.allow with input as fixtures.call(fixtures.admins, fixtures.rw, "employees", "get_employee", {})
	gateway.decision.allow with input as fixtures.call(fixtures.admins, fixtures.rw, "employees", "update_employee", {"employee_id": "e-1"})
	d := gateway.decision with input as fixtures.call(fixtures.admins, fixtures.rw, "employees", "delete_employee", {"employee_id": "e-1"})
	d.reasons == ["tool delete_employee requires role super-admin on backend employees"]
	d.status == 0
}

test_super_admin_deletes if {
	gateway.decision.allow with input as fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "delete_employee", {"employee_id": "e-1"})
}

test_no_role_no_tools if {
	d := gateway.decision with input as fixtures.call([], fixtures.rw, "employees", "get_employee", {})
	d.reasons == ["tool get_employee requires role viewer on backend employees"]
	roles.caller_roles == set() with input as fixtures.call(["unrelated"], fixtures.rw, "employees", "get_employee", {})
}

test_role_outside_hierarchy_grants_its_own if {
	grants := object.union(data.mcpgw.roles.grants, {"auditor": {"*": {"tools": {"allow": ["audit_*"]}}}})
	groups := object.union(data.mcpgw.roles.groups, {"auditors": "auditor"})
	req := fixtures.call(["auditors"], fixtures.rw, "employees", "audit_log", {})
	gateway.decision.allow with input as req with data.mcpgw.roles.grants as grants with data.mcpgw.roles.groups as groups
	roles.caller_roles == {"auditor"} with input as req with data.mcpgw.roles.groups as groups
}

test_backend_grant_adds_to_default if {
	gateway.decision.allow with input as fixtures.call(fixtures.viewers, fixtures.ro, "notes", "read_file", {"path": "notes/a"})
	d := gateway.decision with input as fixtures.call(fixtures.viewers, fixtures.rw, "employees", "read_file", {})
	d.reasons == ["tool read_file requires role admin on backend employees"]
}

test_tool_granted_to_no_role if {
	req := fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "drop_tables", {})
	grants := {"super-admin": {"*": {"tools": {"allow": ["get_*"]}}}}
	d := gateway.decision with input as req with data.mcpgw.roles.grants as grants
	d.reasons == ["tool drop_tables is not granted to any role on backend employees"]
}

test_resources_and_prompts_need_a_role if {
	d := gateway.decision with input as fixtures.request([], fixtures.ro, "resources/read", "file:///srv/report.txt")
	d.reasons == ["resource file:///srv/report.txt requires role viewer on backend employees"]
	e := gateway.decision with input as fixtures.request([], fixtures.ro, "prompts/get", "summarize")
	e.reasons == ["prompt summarize requires role viewer on backend employees"]
	gateway.decision.allow with input as fixtures.request(fixtures.viewers, fixtures.ro, "resources/read", "file:///srv/report.txt")
	gateway.decision.allow with input as fixtures.request(fixtures.viewers, fixtures.ro, "prompts/get", "summarize")
}

test_globs_have_no_delimiters if {
	req := fixtures.call(fixtures.viewers, fixtures.ro, "employees", "get_employee.v2/by-id", {})
	gateway.decision.allow with input as object.union(req, {"tools": [{"name": "get_employee.v2/by-id", "annotations": {}}]})
}

# --- visibility -------------------------------------------------------------

test_viewer_sees_viewer_tools if {
	gateway.visible_tools == {"get_employee", "list_employees", "search_employees"} with input as fixtures.request(fixtures.viewers, fixtures.ro, "tools/list", "")
}

test_admin_sees_all_but_delete if {
	gateway.visible_tools == {"get_employee", "list_employees", "search_employees", "update_employee"} with input as fixtures.request(fixtures.admins, fixtures.rw, "tools/list", "")
}

test_admin_without_write_scope_sees_read_only_tools if {
	gateway.visible_tools == {"get_employee", "list_employees", "search_employees"} with input as fixtures.request(fixtures.admins, fixtures.ro, "tools/list", "")
}

test_super_admin_sees_everything if {
	gateway.visible_tools == {t.name | some t in fixtures.employee_tools} with input as fixtures.request(fixtures.super_admins, fixtures.rw, "tools/list", "")
}

test_caller_denial_hides_everything if {
	req := object.union(fixtures.request(fixtures.super_admins, fixtures.rw, "tools/list", ""), {"agent": {"enabled": false}})
	gateway.visible_tools == set() with input as req
	gateway.visible_resources == set() with input as object.union(req, {"resources": [{"uri": "file:///a", "name": "a"}]})
	gateway.visible_prompts == set() with input as object.union(req, {"prompts": [{"name": "p"}]})
}

test_visible_tools_match_calls if {
	every groups in [[], fixtures.viewers, fixtures.admins, fixtures.super_admins] {
		every scopes in [[], fixtures.ro, fixtures.rw] {
			every backend in ["employees", "files"] {
				listed := gateway.visible_tools with input as object.union(fixtures.request(groups, scopes, "tools/list", ""), {"backend": {"name": backend}, "tools": fixtures.tools_of(backend)})
				callable := {t.name |
					some t in fixtures.tools_of(backend)
					gateway.decision.allow with input as fixtures.call(groups, scopes, backend, t.name, {"path": "notes/x", "employee_id": "e-1"})
				}
				listed == callable
			}
		}
	}
}

test_visible_resources_and_prompts if {
	req := object.union(fixtures.request(fixtures.viewers, fixtures.ro, "resources/list", ""), {
		"resources": [{"uri": "file:///a", "name": "a"}, {"uri": "file:///b", "name": "b"}],
		"prompts": [{"name": "summarize"}],
	})
	gateway.visible_resources == {"file:///a", "file:///b"} with input as req
	gateway.visible_prompts == {"summarize"} with input as req
	gateway.visible_resources == set() with input as object.union(req, {"token": {"groups": []}})
	gateway.visible_prompts == set() with input as object.union(req, {"token": {"scopes": []}})
}
