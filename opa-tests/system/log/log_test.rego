package system.log_test

import data.system.log

# The README promises a shipped mask: token claims and tool arguments never
# reach a decision log.
test_mask_hides_token_claims_and_tool_arguments if {
	every path in {"/input/token/claims", "/input/mcp/arguments"} {
		path in log.mask
	}
}

# What a reader of the decision log needs to follow a decision stays: the
# caller's identity (sub, iss, client_id) is not masked, neither directly
# nor through a masked parent.
test_mask_keeps_who_and_what_was_decided if {
	every path in {
		"/input/token/sub", "/input/token/iss", "/input/token/client_id",
		"/input/mcp/tool", "/input/agent/id", "/input/backend/name",
	} {
		not masked(path)
	}
}

# A path is masked when it or one of its parents is in the mask.
masked(path) if {
	some m in log.mask
	startswith(concat("", [path, "/"]), concat("", [m, "/"]))
}

test_masked_covers_children if {
	masked("/input/token/claims/email")
	masked("/input/mcp/arguments")
	not masked("/input/token")
}
