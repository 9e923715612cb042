package mcp

import (
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/ijson"
)

// spliceBoth filters every message of a reply both ways, by Splice and by
// the tree (FilterLists and Encode), and fails unless the splice was made
// and reads exactly as the tree. keep is asked afresh for each way (newKeep
// makes one), in the same order. It returns the spliced messages.
func spliceBoth(t testing.TB, reply, method string, newKeep func() func(ListKey, ListItem) bool) []string {
	t.Helper()
	msgs, _, err := ParseReply([]byte(reply))
	if err != nil {
		t.Fatalf("ParseReply(%q): %v", reply, err)
	}
	var out []string
	for i := range msgs {
		m := msgs[i]
		lists, err := m.Lists(method)
		if err != nil {
			t.Fatalf("Lists: %v", err)
		}
		spliced, ok := m.Splice(lists, newKeep())
		if !ok {
			t.Fatalf("no splice of %q", reply)
		}
		tree := msgs[i]
		if res, isResult := tree.Result(); isResult {
			tree.SetResult(FilterLists(res, lists, newKeep()))
		}
		want, err := ijson.Parse(tree.Encode())
		if err != nil {
			t.Fatal(err)
		}
		got, err := ijson.Parse(spliced)
		if err != nil {
			t.Fatalf("the splice of %q is not I-JSON: %v\n%s", reply, err, spliced)
		}
		if !got.Equal(want) {
			t.Fatalf("the splice reads differently from the filtered tree:\nreply  %q\nsplice %s\ntree   %s", reply, spliced, tree.Encode())
		}
		if _, _, err := ParseReply(spliced); err != nil {
			t.Fatalf("the splice is not a reply: %v\n%s", err, spliced)
		}
		out = append(out, string(spliced))
	}
	return out
}

// hide keeps every item but the named ones.
func hide(names ...string) func() func(ListKey, ListItem) bool {
	return func() func(ListKey, ListItem) bool {
		return func(_ ListKey, it ListItem) bool {
			for _, n := range names {
				if it.Name == n {
					return false
				}
			}
			return true
		}
	}
}

// TestSplice: the reply as received minus the hidden items, with the
// commas right wherever the hidden items were, and everything else (member
// order, whitespace, escapes, other members and messages) byte for byte.
func TestSplice(t *testing.T) {
	three := `{"result":{"tools":[{"name":"a"},{"name":"b"},{"name":"c"}],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`
	spaced := "{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 1 ,\r\n \"result\" : { \"tools\" : [\n  { \"name\" : \"\\u0061\" } ,\n  {\"name\":\"b\", \"description\":\"caf\\u00e9 \\\"q\\\" \\/ \\ud83d\\ude00\"}\t,\n  {\"name\":\"c\"}\n ] } }\n"
	for _, c := range []struct {
		name, reply, method string
		keep                func() func(ListKey, ListItem) bool
		want                []string
	}{
		{"nothing hidden: the reply as received", three, "tools/list", hide(), []string{three}},
		{"key order kept, first hidden", three, "tools/list", hide("a"),
			[]string{`{"result":{"tools":[{"name":"b"},{"name":"c"}],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`}},
		{"middle hidden", three, "tools/list", hide("b"),
			[]string{`{"result":{"tools":[{"name":"a"},{"name":"c"}],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`}},
		{"last hidden", three, "tools/list", hide("c"),
			[]string{`{"result":{"tools":[{"name":"a"},{"name":"b"}],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`}},
		{"first two hidden", three, "tools/list", hide("a", "b"),
			[]string{`{"result":{"tools":[{"name":"c"}],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`}},
		{"last two hidden", three, "tools/list", hide("b", "c"),
			[]string{`{"result":{"tools":[{"name":"a"}],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`}},
		{"first and last hidden", three, "tools/list", hide("a", "c"),
			[]string{`{"result":{"tools":[{"name":"b"}],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`}},
		{"all hidden", three, "tools/list", hide("a", "b", "c"),
			[]string{`{"result":{"tools":[],"nextCursor":"x"},"id":1,"jsonrpc":"2.0"}`}},
		{"empty list", `{"jsonrpc":"2.0","id":1,"result":{"tools":[ ]}}`, "tools/list", hide("a"),
			[]string{`{"jsonrpc":"2.0","id":1,"result":{"tools":[ ]}}`}},
		{"whitespace and escapes kept, first hidden", spaced, "tools/list", hide("a"),
			[]string{"{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 1 ,\r\n \"result\" : { \"tools\" : [\n  {\"name\":\"b\", \"description\":\"caf\\u00e9 \\\"q\\\" \\/ \\ud83d\\ude00\"}\t,\n  {\"name\":\"c\"}\n ] } }"}},
		{"whitespace and escapes kept, last hidden", spaced, "tools/list", hide("c"),
			[]string{"{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 1 ,\r\n \"result\" : { \"tools\" : [\n  { \"name\" : \"\\u0061\" } ,\n  {\"name\":\"b\", \"description\":\"caf\\u00e9 \\\"q\\\" \\/ \\ud83d\\ude00\"}\n ] } }"}},
		{"whitespace kept, all hidden", spaced, "tools/list", hide("a", "b", "c"),
			[]string{"{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 1 ,\r\n \"result\" : { \"tools\" : [\n  \n ] } }"}},
		// Only the result's own lists are lists: arrays inside an item,
		// even of tool-shaped objects under "tools", go whole with it or
		// stay whole.
		{"nested tools-like arrays stay whole", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","tools":[{"name":"b"},{"name":"c"}],"x":[[{"name":"c"}]]},{"name":"c","inputSchema":{"enum":[{"name":"a"}]}}]}}`,
			"tools/list", hide("b"), []string{`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","tools":[{"name":"b"},{"name":"c"}],"x":[[{"name":"c"}]]},{"name":"c","inputSchema":{"enum":[{"name":"a"}]}}]}}`}},
		{"an item with nested arrays hidden whole", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","tools":[{"name":"b"}]},{"name":"c","x":[1,[2]]}]}}`,
			"tools/list", hide("a"), []string{`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"c","x":[1,[2]]}]}}`}},
		{"two lists in one result", `{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a"},{"name":"p"}],"tools":[{"name":"t"},{"name":"a"}]}}`,
			"", hide("a"), []string{`{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"p"}],"tools":[{"name":"t"}]}}`}},
		{"a list under a folded name", `{"jsonrpc":"2.0","id":1,"result":{"Tools":[{"name":"a"},{"name":"b"}]}}`, "tools/list", hide("a"),
			[]string{`{"jsonrpc":"2.0","id":1,"result":{"Tools":[{"name":"b"}]}}`}},
		{"a batch: each message its own bytes", `[ {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}} , {"jsonrpc":"2.0","id":2,"result":{"content":[]}} ]`,
			"tools/list", hide("a"), []string{`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"}]}}`, `{"jsonrpc":"2.0","id":2,"result":{"content":[]}}`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := spliceBoth(t, c.reply, c.method, c.keep)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("splice\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

// TestSpliceRefusesWhatWasChanged: a message whose result the gateway
// changed (a redaction) or built has no bytes as received to splice.
func TestSpliceRefusesWhatWasChanged(t *testing.T) {
	msgs, _, err := ParseReply([]byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	lists, _ := m.Lists("tools/list")
	if it := lists[0].Items[1]; string(it.Raw) != `{"name":"b"}` {
		t.Fatalf("Raw of an item read from a reply is %q, not its bytes", it.Raw)
	}
	res, _ := m.Result()
	m.SetResult(res)
	if out, ok := m.Splice(lists, hide("a")()); ok {
		t.Fatalf("a changed message was spliced: %s", out)
	}
	if lists, _ := m.Lists("tools/list"); lists[0].Items[1].Raw == nil {
		t.Fatal("a changed message's items have no Raw")
	}
	client, _, perr := ParseBody([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if _, ok := client[0].Splice(nil, hide()()); ok {
		t.Fatal("a client's message was spliced")
	}
}

// FuzzFilterSplice: for any reply the gateway reads and any choice of
// hidden items, the spliced reply reads exactly as the filtered tree.
func FuzzFilterSplice(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"},{"name":"c"}],"nextCursor":"x"}}`,
		"{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 1 , \"result\" : { \"tools\" : [\n  { \"name\" : \"\\u0061\" } ,\n  {\"name\":\"b\"}\t, {\"name\":\"c\"}\n ] } }",
		`[{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a"},{"name":"p"}],"Tools":[{"name":"t","x":[[]]},{"name":"a"}]}},{"jsonrpc":"2.0","id":2,"result":{"resources":[{"uri":"u"},{"uri":"v"}]}}]`,
		`{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"a{x}"},{"uriTemplate":"b"}],"tools":[]}}`,
	} {
		f.Add([]byte(seed), uint64(0b101))
	}
	f.Fuzz(func(t *testing.T, reply []byte, mask uint64) {
		msgs, _, err := ParseReply(reply)
		if err != nil {
			return
		}
		for i := range msgs {
			if _, err := msgs[i].Lists(""); err != nil {
				return
			}
		}
		spliceBoth(t, string(reply), "", func() func(ListKey, ListItem) bool {
			n := 0
			return func(ListKey, ListItem) bool {
				keep := mask>>(n%64)&1 == 0
				n++
				return keep
			}
		})
	})
}
