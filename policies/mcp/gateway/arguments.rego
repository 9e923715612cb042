package mcp.gateway

# METADATA
# title: No wildcard target for destructive tools
# description: >-
#   For each entry of data.mcpgw.argument_rules.wildcard_targets, a matching
#   tool (usually delete_*) may not be called with a target argument that is
#   empty, null, an empty list, or contains a wildcard character ("*", "%"):
#   one call must not remove everything.
message_denials contains message_denial(sprintf(
	"argument %s of tool %s must name one target: empty values and wildcards (%s) are refused",
	[argument, tool_name, concat(" ", rule.wildcards)],
)) if {
	some rule in active_argument_rules.wildcard_targets
	some argument in rule.arguments
	value := input.mcp.arguments[argument]
	wildcard_value(value, rule.wildcards)
}

# METADATA
# title: Path argument must be a string
# description: >-
#   For each entry of data.mcpgw.argument_rules.path_prefixes, a path argument
#   of a matching tool must be a string, or it cannot be checked.
message_denials contains message_denial(sprintf("argument %s of tool %s must be a string", [path.argument, tool_name])) if {
	some path in path_arguments
	not is_string(path.value)
}

# METADATA
# title: No parent-directory steps in paths
# description: A path argument must not contain "..", whatever prefix it starts with.
message_denials contains message_denial(sprintf("argument %s of tool %s must not contain ..", [path.argument, tool_name])) if {
	some path in path_arguments
	contains(path.value, "..")
}

# METADATA
# title: Paths stay under an allowed prefix
# description: A path argument must start with one of the entry's allowed_prefixes.
message_denials contains message_denial(sprintf(
	"argument %s of tool %s must start with one of: %s",
	[path.argument, tool_name, concat(", ", path.prefixes)],
)) if {
	some path in path_arguments
	is_string(path.value)
	not any_prefix(path.value, path.prefixes)
}

# METADATA
# title: Argument rules for this call
# description: >-
#   The entries of each data.mcpgw.argument_rules list whose backends (all,
#   ["*"], when an entry names none) and tools patterns match this
#   tools/call; worked out once per decision.
active_argument_rules := {list: active |
	method == "tools/call"
	some list, rules in data.mcpgw.argument_rules
	active := {rule |
		some rule in rules
		glob_any(object.get(rule, "backends", ["*"]), backend_name)
		glob_any(rule.tools, tool_name)
	}
}

# METADATA
# title: Path arguments of this call
# description: The arguments of this tools/call that a path_prefixes entry constrains, with that entry's prefixes.
path_arguments contains {"argument": argument, "value": value, "prefixes": rule.allowed_prefixes} if {
	some rule in active_argument_rules.path_prefixes
	some argument in rule.arguments
	value := input.mcp.arguments[argument]
}

# METADATA
# title: Empty values are wildcards
# description: An empty or blank string, null or an empty list names no single target.
wildcard_value(value, _) if {
	value in {null, [], {}}
}

wildcard_value(value, _) if {
	is_string(value)
	trim_space(value) == ""
}

# METADATA
# title: Wildcard characters
# description: A string containing one of the rule's wildcard characters, or a list holding such a string.
wildcard_value(value, wildcards) if {
	is_string(value)
	some w in wildcards
	contains(value, w)
}

wildcard_value(value, wildcards) if {
	is_array(value)
	some item in value
	is_string(item)
	some w in wildcards
	contains(item, w)
}

wildcard_value(value, _) if {
	is_array(value)
	some item in value
	is_string(item)
	trim_space(item) == ""
}

# METADATA
# title: Starts with an allowed prefix
# description: True when value starts with one of prefixes.
any_prefix(value, prefixes) if {
	some prefix in prefixes
	startswith(value, prefix)
}
