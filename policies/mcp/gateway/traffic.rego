package mcp.gateway

# Every request that reaches a backend is decided, not only JSON-RPC
# requests and notifications: input.mcp.kind says what is decided. Rules key
# on the kind, never on the text of input.mcp.method (a JSON-RPC request may
# be called "GET").

# METADATA
# title: Unknown kinds of traffic are refused
# description: >-
#   Traffic that is neither a JSON-RPC message nor a kind of session traffic
#   listed in data.mcpgw.session_kinds (as a method that needs a scope) is
#   refused at the HTTP level, so a new kind of traffic is closed until
#   someone classifies it.
message_denials contains transport_denial(sprintf("traffic of kind %v is not allowed by policy", [traffic_kind])) if {
	not message_traffic
	not required_scope
}

# METADATA
# title: Kind of traffic
# description: >-
#   What is decided (input.mcp.kind): "request" or "notification", a JSON-RPC
#   message decided by its method; or session traffic: "response" (a client's
#   answer to a server-initiated request), "stream" (the HTTP GET opening the
#   server-to-client stream) or "close" (the HTTP DELETE ending the session).
#   An empty or absent kind is "request", as in inputs written before the
#   field existed.
default traffic_kind := "request"

traffic_kind := input.mcp.kind if input.mcp.kind != ""

# METADATA
# title: JSON-RPC message
# description: >-
#   The traffic is a JSON-RPC request or notification, decided by its method.
#   Every other kind is decided by the session it belongs to (session_method).
message_traffic if traffic_kind in {"request", "notification"}

# METADATA
# title: Method session traffic is decided as
# description: >-
#   For session traffic, the method whose requirements it shares, from
#   data.mcpgw.session_kinds: initialize, so a caller that may not start a
#   session on a backend may neither open its stream, answer its server's
#   requests nor end it. Undefined for JSON-RPC messages and unlisted kinds.
session_method := data.mcpgw.session_kinds[traffic_kind] if not message_traffic
