package gateway

import (
	"hash/maphash"
	"strings"
	"sync"

	"github.com/mcpgw/mcpgw/internal/ijson"
	"github.com/mcpgw/mcpgw/internal/integrity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// catalog remembers what each backend lists. A tool's annotations feed
// tools/call decisions (readOnlyHint) and its input schema the check of
// argument names; a call to a tool the gateway has not seen listed makes it
// fetch the backend's list first (toolschema.go), so every replica decides
// a call on the same entry. Prepared lists make repeated visibility queries
// cheap: the policy engine caches its answers per caller and prepared list.
type catalog struct {
	seed     maphash.Seed
	mu       sync.RWMutex
	tools    map[string]map[string]toolEntry
	prepared map[preparedKey]*policy.Catalog
}

// toolEntry is what the gateway knows of one listed tool.
type toolEntry struct {
	annotations map[string]any
	schema      ijson.Value
	// item is the tool as listed, for its definition.
	item mcp.ListItem
	// def holds what every call of the tool derives from item, built at
	// the first call (nil in an entry not from remember: derived each time).
	def *toolDef
}

// toolDef is a listed tool as calls of it read it. Its maps and bytes are
// shared by every call of the tool until it is listed again, and only read
// (like item.Annotations always was).
type toolDef struct {
	once sync.Once
	// input is toolInput(item, nil): its schemas as plain Go values.
	input policy.Tool
	// schemaJSON is the input schema's encoding, for hintTool.
	schemaJSON []byte
}

// input is the policy input of the tool, with the call's classification.
func (e *toolEntry) input(integ *policy.Integrity) policy.Tool {
	if e.def == nil {
		return toolInput(e.item, integ)
	}
	d := e.derived()
	t := d.input
	t.Integrity = integ
	return t
}

// schemaJSON is the tool's input schema, encoded.
func (e *toolEntry) schemaJSON() []byte {
	if e.def == nil {
		return e.schema.Encode()
	}
	return e.derived().schemaJSON
}

func (e *toolEntry) derived() *toolDef {
	d := e.def
	d.once.Do(func() {
		d.input = toolInput(e.item, nil)
		d.schemaJSON = e.schema.Encode()
	})
	return d
}

// preparedKey names a prepared list: the backend, the list and a digest of
// its items as listed and of their classification.
type preparedKey struct {
	backend string
	list    mcp.ListKey
	digest  uint64
}

// maxPrepared bounds the prepared lists kept; past it the map starts over
// (lists change rarely, so this only matters under churn or abuse).
const maxPrepared = 1024

func newCatalog() *catalog {
	return &catalog{seed: maphash.MakeSeed(), tools: map[string]map[string]toolEntry{}, prepared: map[preparedKey]*policy.Catalog{}}
}

// remember merges one page of a tools/list result.
func (c *catalog) remember(backend string, items []mcp.ListItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.tools[backend]
	if m == nil {
		m = map[string]toolEntry{}
		c.tools[backend] = m
	}
	for _, it := range items {
		// Raw may be a slice of the whole reply (mcp.Message.Lists): kept,
		// it would hold the reply in memory for as long as the entry. The
		// entry's definition is read from Item.
		it.Raw = nil
		m[it.Name] = toolEntry{annotations: it.Annotations, schema: it.InputSchema, item: it, def: &toolDef{}}
	}
}

// tool is the entry of one tool of backend, if the gateway has seen it listed.
func (c *catalog) tool(backend, name string) (toolEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.tools[backend][name]
	return e, ok
}

// prepare returns the prepared form of one page of a list, building it
// only when the backend's list or its classification changed. integ is nil
// when the backend's tool_integrity is off, else one result per item.
func (c *catalog) prepare(backend string, list mcp.ListKey, items []mcp.ListItem, integ []integrity.Result) (*policy.Catalog, error) {
	var h maphash.Hash
	h.SetSeed(c.seed)
	if integ != nil {
		h.WriteByte('I') // classified, even when empty
	}
	for i, it := range items {
		h.Write(it.Raw)
		h.WriteByte(0)
		if integ != nil {
			r := integ[i]
			h.WriteString(string(r.Status))
			h.WriteByte(0)
			h.WriteString(strings.Join(r.Changed, ","))
			if r.Rejected {
				h.WriteByte(1)
			}
			h.WriteByte(0)
		}
	}
	key := preparedKey{backend, list, h.Sum64()}
	c.mu.RLock()
	cat := c.prepared[key]
	c.mu.RUnlock()
	if cat != nil {
		return cat, nil
	}
	cat, err := buildCatalog(list, items, integ)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.prepared) >= maxPrepared {
		c.prepared = map[preparedKey]*policy.Catalog{}
	}
	c.prepared[key] = cat
	c.mu.Unlock()
	return cat, nil
}

func buildCatalog(list mcp.ListKey, items []mcp.ListItem, integ []integrity.Result) (*policy.Catalog, error) {
	classified := func(i int) *policy.Integrity {
		if integ == nil {
			return nil
		}
		return integrityInput(integ[i])
	}
	switch list {
	case mcp.ListTools:
		tools := make([]policy.Tool, len(items))
		for i, it := range items {
			tools[i] = toolInput(it, classified(i))
		}
		return policy.ToolCatalog(tools)
	case mcp.ListResources, mcp.ListResourceTemplates:
		res := make([]policy.Resource, len(items))
		for i, it := range items {
			res[i] = resourceInput(list, it, classified(i))
		}
		return policy.ResourceCatalog(res)
	}
	prompts := make([]policy.Prompt, len(items))
	for i, it := range items {
		prompts[i] = promptInput(it, classified(i))
	}
	return policy.PromptCatalog(prompts)
}
