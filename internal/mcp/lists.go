package mcp

import (
	"fmt"

	"github.com/mcpgw/mcpgw/internal/ijson"
)

// ListKey is the member of a list result that holds its items.
type ListKey string

const (
	ListTools             ListKey = "tools"
	ListResources         ListKey = "resources"
	ListResourceTemplates ListKey = "resourceTemplates"
	ListPrompts           ListKey = "prompts"
)

var listKeys = []ListKey{ListTools, ListResources, ListResourceTemplates, ListPrompts}

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

// ListItem is the part of a tool, resource, template or prompt the policy
// sees. Raw is the item's bytes: as received when the list was found in a
// reply's bytes (Message.Lists), else its canonical encoding. It keys the
// gateway's prepared catalogs (equal bytes are one reading), never a pin:
// pins hash integrity.FromItem's sorted encoding.
type ListItem struct {
	Name        string
	URI         string
	URITemplate string
	Annotations map[string]any
	// InputSchema is a tool's inputSchema as listed (Kind Null when absent).
	InputSchema ijson.Value
	// Item is the whole item as read, for what else a decision or a pin
	// reads of it (description, schemas; ijson.Value.GetFolded).
	Item ijson.Value
	Raw  []byte
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

// List is one list found in a result.
type List struct {
	Key   ListKey
	Items []ListItem
	// member is the index in the result object of the items' array, and
	// array that array as read (with its items' spans, for Message.Splice).
	member int
	array  ijson.Value
}

// FindLists finds the lists in the result of a response. The gateway reads
// backend replies the way the most lenient client would: a member whose
// name folds to "tools" ("Tools", "TOOLS") is what a Go client binds, so it
// is a list too, and every list-shaped member is found, not only the one
// the request asked for, since the gateway cannot know which one a client
// will read. method is the request's, when the gateway saw it (a reply on a
// resumed stream is recognised by shape alone); its list must be an array.
func FindLists(result ijson.Value, method string) ([]List, error) {
	return findLists(nil, result, method)
}

// findLists is FindLists; src, when not nil, is the text result was parsed
// from, whose bytes each item's Raw is then.
func findLists(src []byte, result ijson.Value, method string) ([]List, error) {
	if result.Kind != ijson.Object {
		return nil, nil
	}
	want := ListKeyForMethod(method)
	var lists []List
	for i, m := range result.Members {
		key := listKeyOf(m.Name)
		if key == "" {
			continue
		}
		if m.Value.Kind != ijson.Array {
			if key == want {
				return nil, fmt.Errorf("%s result: %q is %s, not an array", key, m.Name, m.Value.Kind)
			}
			continue
		}
		l := List{Key: key, member: i, array: m.Value, Items: make([]ListItem, 0, len(m.Value.Items))}
		for j, item := range m.Value.Items {
			it, err := readItem(src, item)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", key, j, err)
			}
			l.Items = append(l.Items, it)
		}
		lists = append(lists, l)
	}
	if len(lists) > 0 {
		if a, b, found := result.OwnFoldCollision(); found {
			// Which of the two a client reads depends on its language.
			return nil, fmt.Errorf("result has both %q and %q", a, b)
		}
	}
	return lists, nil
}

// foldedListKeys maps each list key's folded form to the key, built once
// rather than folding the keys again for every member of every reply.
var foldedListKeys = func() map[string]ListKey {
	m := make(map[string]ListKey, len(listKeys))
	for _, k := range listKeys {
		m[ijson.Fold(string(k))] = k
	}
	return m
}()

func listKeyOf(name string) ListKey { return foldedListKeys[ijson.Fold(name)] }

// FilterLists returns result with only the items keep accepts in each of
// lists, in order; every other member (nextCursor, _meta) is kept as it was.
func FilterLists(result ijson.Value, lists []List, keep func(ListKey, ListItem) bool) ijson.Value {
	out := result
	out.Members = append([]ijson.Member(nil), result.Members...)
	for _, l := range lists {
		arr := result.Members[l.member].Value
		kept := ijson.Value{Kind: ijson.Array, Items: make([]ijson.Value, 0, len(arr.Items))}
		for i, it := range l.Items {
			if keep(l.Key, it) {
				kept.Items = append(kept.Items, arr.Items[i])
			}
		}
		out.Members[l.member].Value = kept
	}
	return out
}

// The item members read by folded name, folded once.
var (
	foldedURITemplate = ijson.Fold("uriTemplate")
	foldedInputSchema = ijson.Fold("inputSchema")
)

func readItem(src []byte, v ijson.Value) (ListItem, error) {
	if v.Kind != ijson.Object {
		return ListItem{}, fmt.Errorf("item is %s, not an object", v.Kind)
	}
	if a, b, found := v.OwnFoldCollision(); found {
		return ListItem{}, fmt.Errorf("item has both %q and %q", a, b)
	}
	it := ListItem{InputSchema: ijson.Value{Kind: ijson.Null}, Item: v}
	if start, end, ok := v.Span(); ok && src != nil {
		// Encoding each item only to key the catalog by it was a quarter
		// of a large list's cost; the bytes read are as good a key.
		it.Raw = src[start:end:end]
	} else {
		it.Raw = v.Encode()
	}
	for _, m := range v.Members {
		// Fold-matched for the same reason as the list itself, now that the
		// item is known to have no colliding names.
		switch ijson.Fold(m.Name) {
		case "name":
			it.Name = m.Value.Str
		case "uri":
			it.URI = m.Value.Str
		case foldedURITemplate:
			it.URITemplate = m.Value.Str
		case "annotations":
			if a, b, found := m.Value.OwnFoldCollision(); found {
				return ListItem{}, fmt.Errorf("annotations have both %q and %q", a, b)
			}
			if m.Value.Kind == ijson.Object {
				it.Annotations = m.Value.Any().(map[string]any)
			}
		case foldedInputSchema:
			it.InputSchema = m.Value
		}
	}
	return it, nil
}
