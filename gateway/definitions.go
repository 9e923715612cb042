package gateway

import (
	"github.com/mcpgw/mcpgw/internal/ijson"
	"github.com/mcpgw/mcpgw/internal/integrity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// What the policy sees of a listed item: its definition as the backend
// listed it (so rules can screen descriptions and schemas) and, when the
// backend's tool_integrity is not off, its classification against the
// approved definition.

// pinnedKind is the kind of item a list holds, for the lists whose items
// are pinned: tools, prompts and resource templates. Plain resources are
// data, not instructions to a model, and are not pinned.
func pinnedKind(list mcp.ListKey) (integrity.Kind, bool) {
	switch list {
	case mcp.ListTools:
		return integrity.KindTool, true
	case mcp.ListPrompts:
		return integrity.KindPrompt, true
	case mcp.ListResourceTemplates:
		return integrity.KindResourceTemplate, true
	}
	return "", false
}

// toolInput is the policy's entry of one listed tool; in is nil when the
// backend's tool_integrity is off.
func toolInput(it mcp.ListItem, in *policy.Integrity) policy.Tool {
	return policy.Tool{
		Name: it.Name, Annotations: it.Annotations, Title: text(it.Item, "title"), Description: text(it.Item, "description"),
		InputSchema: object(it.InputSchema), OutputSchema: object(member(it.Item, "outputSchema")), Integrity: in,
	}
}

func resourceInput(list mcp.ListKey, it mcp.ListItem, in *policy.Integrity) policy.Resource {
	return policy.Resource{URI: it.Key(list), Name: it.Name, Description: text(it.Item, "description"), Integrity: in}
}

func promptInput(it mcp.ListItem, in *policy.Integrity) policy.Prompt {
	p := policy.Prompt{Name: it.Name, Title: text(it.Item, "title"), Description: text(it.Item, "description"), Integrity: in}
	if args := member(it.Item, "arguments"); args.Kind == ijson.Array {
		p.Arguments, _ = args.Any().([]any)
	}
	return p
}

// integrityInput is a classification as the policy input carries it.
func integrityInput(r integrity.Result) *policy.Integrity {
	return &policy.Integrity{Status: string(r.Status), Changed: r.Changed, Rejected: r.Rejected}
}

// member is an item's member by folded name (as mcp.FindLists reads list
// items); Null when absent.
func member(item ijson.Value, name string) ijson.Value {
	if v, ok := item.GetFolded(name); ok {
		return v
	}
	return ijson.Value{Kind: ijson.Null}
}

// text is a member that should be a string: the string, or the JSON text
// of anything else, so that no text a model may read escapes a screen.
func text(item ijson.Value, name string) string {
	switch v := member(item, name); v.Kind {
	case ijson.String:
		return v.Str
	case ijson.Null:
		return ""
	default:
		return string(v.Encode())
	}
}

// object is a member that should be an object as plain Go values; nil
// when absent or not an object.
func object(v ijson.Value) map[string]any {
	if v.Kind != ijson.Object {
		return nil
	}
	m, _ := v.Any().(map[string]any)
	return m
}
