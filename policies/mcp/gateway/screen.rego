package mcp.gateway

# The tool screen: patterns in data.mcpgw.tool_screen that a tool's
# definition must not match (hidden instructions for the model, invisible
# text, instructions to read secrets or send data away, schema properties
# asking for secrets). A tool that matches is hidden and its calls refused
# on backends whose tool_integrity is one of data.mcpgw.tool_screen.modes.

# METADATA
# title: Screen applies
# description: The backend's tool_integrity is one of data.mcpgw.tool_screen.modes.
screen_applies(backend) if backend.tool_integrity in object.get(data.mcpgw, ["tool_screen", "modes"], [])

# METADATA
# title: Screened tool
# description: A tool of a backend the screen applies to that matches a screening pattern.
screened(backend, tool) if {
	screen_applies(backend)
	count(screen_hits(tool)) > 0
}

# METADATA
# title: Screened tools cannot be called
# description: A tools/call of a screened tool is refused, naming the patterns it matched.
message_denials contains message_denial(sprintf(
	"tool %s of backend %s matches screening patterns %s (data.mcpgw.tool_screen)",
	[tool_name, backend_name, concat(", ", sort(screen_hits(called_tool)))],
)) if {
	method == "tools/call"
	tool_name != ""
	screened(input.backend, called_tool)
}

# METADATA
# title: Screening hits
# description: >-
#   The names of the patterns a tool matches: text_patterns against its title,
#   description and every description or title in its schemas;
#   property_patterns against the property names of its input schema.
screen_hits(tool) := {p.name |
	some p in data.mcpgw.tool_screen.text_patterns
	some text in tool_texts(tool)
	regex.match(p.regex, text)
} | {p.name |
	some p in data.mcpgw.tool_screen.property_patterns
	some property in schema_properties(tool)
	regex.match(p.regex, property)
}

# METADATA
# title: Texts a model reads of a tool
# description: Its title and description, and every description or title string inside its input and output schemas.
tool_texts(tool) := {text | some text in [object.get(tool, "title", ""), object.get(tool, "description", "")]; text != ""} | {text |
	some key in ["inputSchema", "outputSchema"]
	walk(object.get(tool, key, {}), [path, text])
	count(path) > 0
	path[count(path) - 1] in {"description", "title"}
	is_string(text)
}

# METADATA
# title: Input schema property names
# description: Every property name at any depth of the tool's input schema (keys of a "properties" object).
schema_properties(tool) := {name |
	walk(object.get(tool, "inputSchema", {}), [path, _])
	count(path) >= 2
	path[count(path) - 2] == "properties"
	name := path[count(path) - 1]
	is_string(name)
}
