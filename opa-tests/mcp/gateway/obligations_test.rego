package mcp.gateway_test

import data.mcp.fixtures
import data.mcp.gateway

# --- obligations: redact for viewers, a call budget per user and tool -------

admin_groups := ["mcp-admins"]

test_viewer_call_is_redacted_and_budgeted if {
	d := gateway.decision with input as fixtures.base
	d.allow
	d.obligations.redact == {
		"patterns": data.mcpgw.obligations.redact.patterns,
		"fields": data.mcpgw.obligations.redact.fields,
	}
	d.obligations.rate_limit == {
		"key": "tool_budget|https://idp.example.com|alice@example.com|employees|get_employee",
		"limit": data.mcpgw.obligations.tool_budget.limit,
		"window": data.mcpgw.obligations.tool_budget.window,
	}
}

test_admin_call_is_budgeted_not_redacted if {
	d := gateway.decision with input as object.union(fixtures.base, {"token": {"groups": admin_groups}})
	d.allow
	not d.obligations.redact
	d.obligations.rate_limit.limit == data.mcpgw.obligations.tool_budget.limit
}

test_budget_keys_differ_per_user_and_tool if {
	a := gateway.decision with input as fixtures.base
	b := gateway.decision with input as object.union(fixtures.base, {"token": {"sub": "bob@example.com"}})
	c := gateway.decision with input as object.union(fixtures.base, {"mcp": {"tool": "list_employees"}})
	count({a.obligations.rate_limit.key, b.obligations.rate_limit.key, c.obligations.rate_limit.key}) == 3
}

test_no_obligations_without_their_data if {
	d := gateway.decision with input as fixtures.base with data.mcpgw.obligations as {}
	d == {"allow": true, "reasons": [], "status": 0}
}

test_only_calls_carry_obligations if {
	d := gateway.decision with input as object.union(fixtures.base, {"mcp": {"method": "tools/list", "tool": ""}})
	d == {"allow": true, "reasons": [], "status": 0}
}

test_denials_carry_no_obligations if {
	d := gateway.decision with input as object.union(fixtures.base, {"mcp": {"tool": "delete_employee"}})
	d.allow == false
	not d.obligations
}

test_deletes_ask_for_confirmation if {
	req := object.union(fixtures.base, {"token": {"groups": ["mcp-super-admins"]}, "mcp": {"tool": "delete_employee", "arguments": {"employee_id": "e-7"}}})
	d := gateway.decision with input as req
	d.allow
	d.obligations.confirm.message == `Allow delete_employee on employees with {"employee_id":"e-7"}?`
}

test_reads_ask_nothing if {
	d := gateway.decision with input as fixtures.base
	not d.obligations.confirm
}
