package mcp.admin_test

import data.mcp.admin
import data.mcp.fixtures

test_super_admin_does_everything if {
	every action in ["list", "get", "write", "delete"] {
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
	every action in ["write", "delete"] {
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

# A backend write as the gateway sends it: action write, with the url's
# address class.
backend_write(groups, class) := object.union(
	fixtures.admin_request(groups, "write", "backends", "hr"),
	{"admin": {"target": {"url": "http://hr.example/mcp", "host": "hr.example", "address_class": class}}},
)

test_backend_targets_by_address_class if {
	every class in ["public", "private", "loopback", "unresolved"] {
		admin.allow with input as backend_write(fixtures.super_admins, class)
		admin.reasons == {"super-admin may do every admin action"} with input as backend_write(fixtures.super_admins, class)
	}
	every class in ["link-local", "metadata"] {
		not admin.allow with input as backend_write(fixtures.super_admins, class)
		admin.reasons == {sprintf("backend url host hr.example is a %s address, which data.mcpgw.admin.refused_address_classes refuses", [class])} with input as backend_write(fixtures.super_admins, class)
	}
}

test_refused_address_classes_are_data if {
	admin.allow with input as backend_write(fixtures.super_admins, "metadata")
		with data.mcpgw.admin.refused_address_classes as []
	not admin.allow with input as backend_write(fixtures.super_admins, "private")
		with data.mcpgw.admin.refused_address_classes as ["private"]
}

test_refused_target_is_refused_whatever_the_role if {
	not admin.allow with input as backend_write(fixtures.admins, "metadata")
	admin.reasons == {"backend url host hr.example is a metadata address, which data.mcpgw.admin.refused_address_classes refuses"} with input as backend_write(fixtures.admins, "metadata")
	not admin.allow with input as backend_write(fixtures.admins, "public")
	admin.reasons == {"admin action write on backends/hr requires role super-admin"} with input as backend_write(fixtures.admins, "public")
}
