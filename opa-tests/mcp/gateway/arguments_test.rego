package mcp.gateway_test

import data.mcp.fixtures
import data.mcp.gateway

delete_call(arguments) := fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "delete_employee", arguments)

file_call(tool, arguments) := fixtures.call(fixtures.super_admins, fixtures.rw, "files", tool, arguments)

wildcard_reason(argument) := sprintf("argument %s of tool delete_employee must name one target: empty values and wildcards (* %%) are refused", [argument])

test_delete_with_one_target_is_allowed if {
	gateway.decision.allow with input as delete_call({"employee_id": "e-1001"})
	gateway.decision.allow with input as delete_call({"employee_id": ["e-1001", "e-1002"]})
	gateway.decision.allow with input as delete_call({"employee_id": 1001})
	gateway.decision.allow with input as delete_call({"reason": "*"})
}

test_delete_with_wildcard_target_is_refused if {
	every value in ["*", "%", "e-*", "100%", "", "   ", null, [], {}, ["e-1", "*"], ["e-1", " "]] {
		d := gateway.decision with input as delete_call({"employee_id": value})
		d == {"allow": false, "reasons": [wildcard_reason("employee_id")], "status": 0}
	}
}

test_wildcard_rule_checks_every_listed_argument if {
	d := gateway.decision with input as delete_call({"target": "*", "where": "%"})
	d.reasons == [wildcard_reason("target"), wildcard_reason("where")]
}

test_wildcard_rule_only_for_matching_tools if {
	gateway.decision.allow with input as fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "update_employee", {"employee_id": "*"})
}

test_path_under_allowed_prefix if {
	gateway.decision.allow with input as file_call("read_file", {"path": "/srv/mcp/shared/report.txt"})
	gateway.decision.allow with input as file_call("write_file", {"file": "notes/today.md"})
	gateway.decision.allow with input as file_call("echo", {"message": "/etc/passwd"})
}

test_path_outside_prefix_is_refused if {
	d := gateway.decision with input as file_call("read_file", {"path": "/etc/passwd"})
	d == {"allow": false, "reasons": ["argument path of tool read_file must start with one of: /srv/mcp/shared/, notes/"], "status": 0}
}

test_path_with_parent_steps_is_refused if {
	d := gateway.decision with input as file_call("read_file", {"path": "/srv/mcp/shared/../../etc/passwd"})
	d.reasons == ["argument path of tool read_file must not contain .."]
	e := gateway.decision with input as file_call("write_file", {"file": "../notes/x"})
	e.reasons == [
		"argument file of tool write_file must not contain ..",
		"argument file of tool write_file must start with one of: /srv/mcp/shared/, notes/",
	]
}

test_path_must_be_a_string if {
	d := gateway.decision with input as file_call("read_file", {"path": ["/srv/mcp/shared/a"]})
	d.reasons == ["argument path of tool read_file must be a string"]
}

test_path_rule_only_on_listed_backends if {
	gateway.decision.allow with input as fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "read_file", {"path": "/etc/passwd"})
}

test_argument_rules_only_for_tools_call if {
	req := object.union(fixtures.request(fixtures.viewers, fixtures.ro, "prompts/get", "summarize"), {"mcp": {"arguments": {"path": "/etc/passwd", "id": "*"}}})
	gateway.decision.allow with input as object.union(req, {"backend": {"name": "files"}})
}

test_argument_rules_do_not_hide_tools if {
	req := object.union(fixtures.request(fixtures.super_admins, fixtures.rw, "tools/list", ""), {"mcp": {"arguments": {"employee_id": "*"}}})
	"delete_employee" in gateway.visible_tools with input as req
}
