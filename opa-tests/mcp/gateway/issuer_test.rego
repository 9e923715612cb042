package mcp.gateway_test

import data.mcp.admin
import data.mcp.fixtures
import data.mcp.gateway
import data.mcp.roles

# Whose tokens an agent takes, and whose groups count: client and issuer
# bindings, tokens without a client, per-issuer group mappings.

issuer_a := "https://idp.example.com"

issuer_b := "https://partner.example.net"

# A token of issuer B naming A's agent client and A's super-admin group: the
# forgery a second trusted issuer can mint.
from_b(req) := object.union(req, {"token": {"iss": issuer_b}})

test_agent_bound_to_client_refuses_tokens_without_client if {
	cases := [
		object.union(fixtures.base, {"token": {"client_id": ""}}),
		json.remove(fixtures.base, ["token/client_id"]),
	]
	every c in cases {
		d := gateway.decision with input as c
		d.allow == false
		d.status == 403
		"agent cursor is bound to client cursor-client, but the token proves no client" in d.reasons
	}
}

test_tokens_without_client_need_an_agent_that_takes_them if {
	clientless := object.union(fixtures.base, {"token": {"client_id": ""}, "agent": {"client_id": ""}})
	d := gateway.decision with input as clientless
	d.reasons == ["the token proves no client, and agent cursor does not take tokens without one (allow_clientless_tokens)"]
	d.status == 403
	gateway.decision.allow with input as object.union(clientless, {"agent": {"allow_clientless_tokens": true}})
	not gateway.decision.allow with input as object.union(clientless, {"agent": {"allow_clientless_tokens": "true"}})
	gateway.visible_tools == set() with input as object.union(clientless, {"mcp": {"method": "tools/list"}})
}

test_agent_bound_to_issuer if {
	bound := object.union(fixtures.base, {"agent": {"issuer": issuer_a}})
	gateway.decision.allow with input as bound
	d := gateway.decision with input as from_b(bound)
	d.reasons == [sprintf("agent cursor is bound to issuer %s, but the token was issued by %s", [issuer_a, issuer_b])]
	d.status == 403
	e := gateway.decision with input as json.remove(bound, ["token/iss"])
	e.reasons == [sprintf("agent cursor is bound to issuer %s, but the token was issued by ", [issuer_a])]
}

test_agent_without_issuer_takes_any_issuer if {
	gateway.decision.allow with input as from_b(fixtures.base)
	gateway.decision.allow with input as from_b(object.union(fixtures.base, {"agent": {"issuer": ""}}))
}

test_roles_come_from_the_issuers_group_mapping if {
	scoped := {"mcp-viewers": "viewer", "mcp-admins": "admin", "mcp-super-admins": "super-admin"}
	req := fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "delete_employee", {"employee_id": "e-1"})
	issuer_groups := {issuer_a: scoped, issuer_b: {"partner-admins": "viewer"}}

	# Only the shared mapping: every issuer's groups map (one-issuer gateways).
	gateway.decision.allow with input as from_b(req)

	# B has its own mapping: A's group names mean nothing in B's tokens.
	d := gateway.decision with input as from_b(req) with data.mcpgw.roles.issuer_groups as issuer_groups
	d.reasons == ["tool delete_employee requires role super-admin on backend employees"]
	roles.caller_roles == set() with input as from_b(req) with data.mcpgw.roles.issuer_groups as issuer_groups
	roles.caller_roles == {"viewer"} with input as from_b(object.union(req, {"token": {"groups": ["partner-admins"]}})) with data.mcpgw.roles.issuer_groups as issuer_groups
	gateway.decision.allow with input as req with data.mcpgw.roles.issuer_groups as issuer_groups

	# An empty entry gives that issuer's tokens no role at all.
	roles.caller_roles == set() with input as from_b(req) with data.mcpgw.roles.issuer_groups as {issuer_b: {}}
	roles.caller_roles == {"viewer", "admin", "super-admin"} with input as req with data.mcpgw.roles.issuer_groups as {issuer_b: {}}
}

test_roles_of_every_mapping_count if {
	auditor := from_b(object.union(fixtures.base, {"token": {"groups": ["auditors"]}}))
	roles.caller_roles == {"auditor"} with input as auditor with data.mcpgw.roles.issuer_groups as {issuer_b: {"auditors": "auditor"}}
	roles.caller_roles == {"viewer", "admin", "super-admin"} with input as from_b(object.union(fixtures.base, {"token": {"groups": fixtures.super_admins}})) with data.mcpgw.roles.issuer_groups as {issuer_b: {"auditors": "auditor", "mcp-super-admins": "super-admin"}}
}

test_backend_groups_are_the_issuers if {
	req := object.union(fixtures.request(["mcp-viewers", "finance"], fixtures.ro, "tools/list", ""), {"backend": {"name": "finance"}})
	gateway.decision.allow with input as from_b(req)

	# B's entry names other groups for finance: B's "finance" group no longer admits.
	entries := {issuer_b: {"finance": ["partner-finance"]}}
	d := gateway.decision with input as from_b(req) with data.mcpgw.issuer_backend_groups as entries
	d.reasons == ["backend finance is restricted to members of partner-finance"]
	gateway.decision.allow with input as from_b(object.union(req, {"token": {"groups": ["mcp-viewers", "partner-finance"]}})) with data.mcpgw.issuer_backend_groups as entries
	gateway.decision.allow with input as req with data.mcpgw.issuer_backend_groups as entries

	# An entry without the backend: no group of B admits, the backend stays restricted.
	e := gateway.decision with input as from_b(req) with data.mcpgw.issuer_backend_groups as {issuer_b: {}}
	e.reasons == [sprintf("backend finance is restricted, and no group of issuer %s admits to it", [issuer_b])]

	# A backend restricted only in A's entry is restricted for B too.
	notes := object.union(req, {"backend": {"name": "notes"}})
	f := gateway.decision with input as from_b(notes) with data.mcpgw.issuer_backend_groups as {issuer_a: {"notes": ["finance"]}}
	f.reasons == [sprintf("backend notes is restricted, and no group of issuer %s admits to it", [issuer_b])]
	gateway.decision.allow with input as notes with data.mcpgw.issuer_backend_groups as {issuer_a: {"notes": ["finance"]}}
}

test_admin_roles_are_scoped_to_the_issuer if {
	root := object.union(fixtures.admin_request(fixtures.super_admins, "delete", "agents", "cursor"), {"token": {"iss": issuer_a}})
	admin.allow with input as root
	admin.allow with input as from_b(root)
	not admin.allow with input as from_b(root) with data.mcpgw.roles.issuer_groups as {issuer_b: {}}
	admin.reasons == {"admin action delete on agents/cursor requires role super-admin"} with input as from_b(root) with data.mcpgw.roles.issuer_groups as {issuer_b: {}}
	admin.allow with input as root with data.mcpgw.roles.issuer_groups as {issuer_b: {}}
}
