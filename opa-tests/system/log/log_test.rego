package system.log_test

import data.system.log

# The README promises a shipped mask: token claims and tool arguments never
# reach a decision log.
test_mask_hides_token_claims_and_tool_arguments if {
	every path in {"/input/token", "/input/mcp/arguments"} {
		path in log.mask
	}
}

# What a reader of the decision log needs to follow a decision stays.
test_mask_keeps_what_was_decided if {
	every path in {"/input/mcp", "/input/mcp/tool", "/input/agent", "/input/backend"} {
		not path in log.mask
	}
}
