# METADATA
# title: Allow everything (tests only)
# description: >-
#   A policy that allows whatever passed the gateway's config boundary, for
#   transport tests that must not depend on the shipped roles. Never ship it.
package mcp.gateway

decision := {"allow": true, "reasons": [], "status": 0}

visible_tools contains tool.name if some tool in input.tools

visible_resources contains resource.uri if some resource in input.resources

visible_prompts contains prompt.name if some prompt in input.prompts
