package mcp

import (
	"encoding/json"
	"fmt"
)

// ListKey is the member of a list result that holds its items.
type ListKey string

const (
	ListTools             ListKey = "tools"
	ListResources         ListKey = "resources"
	ListResourceTemplates ListKey = "resourceTemplates"
	ListPrompts           ListKey = "prompts"
)

// ListKeyForMethod says which list a request method returns, or "".
func ListKeyForMethod(method string) ListKey {
	switch method {
	case "tools/list":
		return ListTools
	case "resources/list":
		return ListResources
	case "resources/templates/list":
		return ListResourceTemplates
	case "prompts/list":
		return ListPrompts
	}
	return ""
}

// DetectListKey recognises a list result by shape, for responses whose
// request the gateway did not see (a replayed or resumed stream): it must
// never let an unfiltered catalog through just because the id is unknown.
func DetectListKey(result json.RawMessage) ListKey {
	if len(result) == 0 || result[0] != '{' {
		return ""
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(result, &probe) != nil {
		return ""
	}
	for _, k := range []ListKey{ListTools, ListResources, ListResourceTemplates, ListPrompts} {
		if v, ok := probe[string(k)]; ok && len(v) > 0 && v[0] == '[' {
			return k
		}
	}
	return ""
}

// ListItem is the part of a tool, resource, template or prompt the policy
// sees. Raw is forwarded unchanged when the item is kept.
type ListItem struct {
	Name        string         `json:"name"`
	URI         string         `json:"uri"`
	URITemplate string         `json:"uriTemplate"`
	Annotations map[string]any `json:"annotations"`
	Raw         json.RawMessage
}

// Key is what visibility is decided on: the URI for resources (the template
// for templates), the name otherwise.
func (it ListItem) Key(k ListKey) string {
	switch k {
	case ListResources:
		return it.URI
	case ListResourceTemplates:
		return it.URITemplate
	}
	return it.Name
}

// ParseList reads the items of a list result.
func ParseList(result json.RawMessage, key ListKey) ([]ListItem, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(result, &fields); err != nil {
		return nil, fmt.Errorf("decode %s result: %w", key, err)
	}
	var raws []json.RawMessage
	if v := fields[string(key)]; len(v) > 0 {
		if err := json.Unmarshal(v, &raws); err != nil {
			return nil, fmt.Errorf("decode %s result: %q is not an array: %w", key, key, err)
		}
	}
	items := make([]ListItem, 0, len(raws))
	for i, raw := range raws {
		var it ListItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, fmt.Errorf("decode %s[%d]: %w", key, i, err)
		}
		it.Raw = raw
		items = append(items, it)
	}
	return items, nil
}

// FilterList keeps the items for which keep is true, in order, and every
// other member of the result (nextCursor, _meta) unchanged.
func FilterList(result json.RawMessage, key ListKey, keep func(ListItem) bool) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(result, &fields); err != nil {
		return nil, fmt.Errorf("decode %s result: %w", key, err)
	}
	items, err := ParseList(result, key)
	if err != nil {
		return nil, err
	}
	kept := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		if keep(it) {
			kept = append(kept, it.Raw)
		}
	}
	list, err := json.Marshal(kept)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", key, err)
	}
	fields[string(key)] = list
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode %s result: %w", key, err)
	}
	return out, nil
}
