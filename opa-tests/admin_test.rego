package mcp.admin_test

import data.mcp.admin
import data.mcp.fixtures

test_super_admin_does_everything if {
	every action in ["list", "get", "create", "update", "delete"] {
		admin.allow with input as fixtures.admin_request(fixtures.super_admins, action, "agents", "cursor")
		admin.reasons == {"super-admin may do every admin action"} with input as fixtures.admin_request(fixtures.super_admins, action, "agents", "cursor")
	}
}

test_admin_reads if {
	admin.allow with input as fixtures.admin_request(fixtures.admins, "list", "agents", "")
	admin.reasons == {"admin may list agents"} with input as fixtures.admin_request(fixtures.admins, "list", "agents", "")
	admin.allow with input as fixtures.admin_request(fixtures.admins, "get", "backends", "employees")
	admin.reasons == {"admin may get backends/employees"} with input as fixtures.admin_request(fixtures.admins, "get", "backends", "employees")
}

test_admin_does_not_change if {
	every action in ["create", "update", "delete"] {
		not admin.allow with input as fixtures.admin_request(fixtures.admins, action, "agents", "cursor")
		admin.reasons == {sprintf("admin action %s on agents/cursor requires role super-admin", [action])} with input as fixtures.admin_request(fixtures.admins, action, "agents", "cursor")
	}
}

test_others_are_refused if {
	not admin.allow with input as fixtures.admin_request(fixtures.viewers, "get", "agents", "cursor")
	admin.reasons == {"admin action get on agents/cursor requires role admin or super-admin"} with input as fixtures.admin_request(fixtures.viewers, "get", "agents", "cursor")
	not admin.allow with input as fixtures.admin_request([], "list", "audit", "")
	not admin.allow with input as {}
	admin.reasons == {"admin action  on  requires role super-admin"} with input as {}
}
