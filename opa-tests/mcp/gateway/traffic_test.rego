package mcp.gateway_test

import data.mcp.fixtures
import data.mcp.gateway

# Session traffic (a client's responses, the GET stream, the DELETE) needs
# what initialize needs on the same backend, and never counts as a method.

test_session_traffic_allowed_with_read_scope if {
	every kind in fixtures.session_kinds {
		d := gateway.decision with input as fixtures.session(fixtures.viewers, fixtures.ro, kind)
		d == {"allow": true, "reasons": [], "status": 0}
	}
}

test_session_traffic_needs_no_role if {
	every kind in fixtures.session_kinds {
		gateway.decision.allow with input as fixtures.session([], fixtures.ro, kind)
	}
}

test_session_traffic_needs_read_scope if {
	every kind in fixtures.session_kinds {
		d := gateway.decision with input as fixtures.session(fixtures.super_admins, [], kind)
		d == {"allow": false, "reasons": ["missing scope mcp:read"], "status": 403, "scope": "mcp:read"}
	}
}

test_session_traffic_needs_agent_scope_too if {
	every kind in fixtures.session_kinds {
		req := object.union(fixtures.session(fixtures.viewers, fixtures.rw, kind), {"agent": {"scopes": ["mcp:write"]}})
		d := gateway.decision with input as req
		d.scope == "mcp:read"
		d.status == 403
	}
}

test_session_traffic_follows_initialize if {
	every kind in fixtures.session_kinds {
		every groups in [[], fixtures.viewers, ["mcp-viewers", "finance"]] {
			every scopes in [[], fixtures.ro, fixtures.rw, ["mcp:write"]] {
				every backend in ["employees", "finance"] {
					session := object.union(fixtures.session(groups, scopes, kind), {"backend": {"name": backend}})
					initialize := object.union(fixtures.request(groups, scopes, "initialize", ""), {"backend": {"name": backend}})
					d := gateway.decision with input as session
					e := gateway.decision with input as initialize
					d.allow == e.allow
					d.status == e.status
					object.get(d, "scope", "") == object.get(e, "scope", "")
				}
			}
		}
	}
}

test_session_traffic_refused_by_caller_checks if {
	every kind in fixtures.session_kinds {
		req := object.union(fixtures.session(fixtures.super_admins, fixtures.rw, kind), {"backend": {"name": "finance"}})
		d := gateway.decision with input as req
		d == {"allow": false, "reasons": ["backend finance is restricted to members of finance"], "status": 403}
		e := gateway.decision with input as object.union(fixtures.session(fixtures.viewers, fixtures.ro, kind), {"agent": {"enabled": false}})
		e == {"allow": false, "reasons": ["agent cursor is disabled"], "status": 403}
	}
}

test_session_traffic_is_not_a_method if {
	# Whatever input.mcp.method says, session traffic is decided as
	# initialize: no unknown-method, role or argument rule applies to it.
	every kind in fixtures.session_kinds {
		every name in ["tools/call", "sampling/createMessage", "GET", ""] {
			req := object.union(fixtures.session(fixtures.viewers, fixtures.ro, kind), {"mcp": {"method": name, "tool": "delete_employee", "arguments": {"employee_id": "*"}}})
			gateway.decision == {"allow": true, "reasons": [], "status": 0} with input as req
			gateway.method == "" with input as req
			gateway.required_scope == "mcp:read" with input as req
		}
	}
}

test_request_named_get_is_an_unknown_method if {
	every name in ["GET", "DELETE", ""] {
		every kind in ["request", "notification"] {
			req := object.union(fixtures.request(fixtures.super_admins, fixtures.rw, name, ""), {"mcp": {"kind": kind}, "http": {"method": "POST"}})
			d := gateway.decision with input as req
			d == {"allow": false, "reasons": [sprintf("method %s is not allowed by policy", [name])], "status": 0}
		}
	}
}

test_empty_kind_is_a_request if {
	every req in [
		fixtures.request(fixtures.viewers, fixtures.ro, "tools/list", ""),
		fixtures.call(fixtures.viewers, fixtures.rw, "employees", "update_employee", {"employee_id": "e-1"}),
		fixtures.call(fixtures.super_admins, fixtures.rw, "employees", "delete_employee", {"employee_id": "*"}),
		fixtures.request(fixtures.super_admins, fixtures.rw, "GET", ""),
		fixtures.request(fixtures.viewers, [], "ping", ""),
	] {
		want := gateway.decision with input as req
		gateway.decision == want with input as object.union(req, {"mcp": {"kind": ""}})
		gateway.decision == want with input as json.remove(req, ["mcp/kind"])
		gateway.traffic_kind == "request" with input as json.remove(req, ["mcp/kind"])
	}
}

test_notification_is_decided_by_method if {
	req := object.union(fixtures.request(fixtures.viewers, fixtures.ro, "notifications/initialized", ""), {"mcp": {"kind": "notification"}})
	gateway.decision.allow with input as req
	d := gateway.decision with input as object.union(req, {"token": {"scopes": []}})
	d.scope == "mcp:read"
}

test_unknown_kind_is_refused if {
	every kind in ["subscribe", "REQUEST", "Stream", 7, null] {
		req := object.union(fixtures.session(fixtures.super_admins, fixtures.rw, "stream"), {"mcp": {"kind": kind}})
		d := gateway.decision with input as req
		d == {"allow": false, "reasons": [sprintf("traffic of kind %v is not allowed by policy", [kind])], "status": 403}
	}
}

test_session_kinds_are_data if {
	# A kind mapped to a method without a scope, or removed, is refused.
	kinds := {"stream": "no/such/method", "response": "initialize"}
	d := gateway.decision with input as fixtures.session(fixtures.viewers, fixtures.ro, "stream") with data.mcpgw.session_kinds as kinds
	d == {"allow": false, "reasons": ["traffic of kind stream is not allowed by policy"], "status": 403}
	e := gateway.decision with input as fixtures.session(fixtures.viewers, fixtures.ro, "close") with data.mcpgw.session_kinds as kinds
	e.reasons == ["traffic of kind close is not allowed by policy"]
	gateway.decision.allow with input as fixtures.session(fixtures.viewers, fixtures.ro, "response") with data.mcpgw.session_kinds as kinds

	# A stricter mapping is honoured: close decided as tools/call needs the write scope.
	f := gateway.decision with input as fixtures.session(fixtures.viewers, fixtures.ro, "close") with data.mcpgw.session_kinds.close as "tools/call"
	f.scope == "mcp:write"
}
