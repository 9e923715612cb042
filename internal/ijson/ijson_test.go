package ijson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseRefusesWhatParsersReadDifferently(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"duplicate member", `{"name":"a","name":"b"}`, "duplicate"},
		{"duplicate after unescaping", `{"name":"a","n\u0061me":"b"}`, "duplicate"},
		{"nested duplicate", `{"p":{"a":[{"x":1,"x":2}]}}`, "duplicate"},
		{"lone high surrogate", `{"a":"\ud800"}`, "surrogate"},
		{"lone low surrogate", `{"a":"\udc00x"}`, "surrogate"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "UTF-8"},
		{"invalid UTF-8 in a name", "{\"\xc3\":1}", "UTF-8"},
		{"overflowing number", `{"a":1e400}`, "range of a double"},
		{"negative overflow", `[-1e400]`, "range of a double"},
		{"underflowing number", `[1e-400]`, "underflows"},
		{"trailing garbage", `{"a":1} x`, "after the JSON value"},
		{"two values", `{"a":1}{"b":2}`, "after the JSON value"},
		{"byte order mark", "\ufeff{}", "invalid character"},
		{"non-JSON whitespace", "{}\u00a0", "after the JSON value"},
		{"leading zero", `[01]`, "invalid character"},
		{"empty", ``, "unexpected end"},
		{"truncated", `{"a":`, "unexpected end"},
		{"single quotes", `{'a':1}`, "invalid character"},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "nested deeper"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v, want a *SyntaxError", c.in, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%q) error %q does not mention %q", c.in, err, c.want)
			}
		})
	}
}

func TestParseKeepsOneExactReading(t *testing.T) {
	cases := []struct {
		name, in, encoded string
	}{
		{"escaped name decodes", `{"n\u0061me":"echo"}`, `{"name":"echo"}`},
		{"member order kept", `{"b":1,"a":2}`, `{"b":1,"a":2}`},
		{"number literal kept exactly", `[123456789012345678901234567890, 1.10, -0, 1E+2, 1e-300]`, `[123456789012345678901234567890,1.10,-0,1E+2,1e-300]`},
		{"surrogate pair", `["\ud83d\ude00"]`, `["😀"]`},
		{"whitespace removed", " {\t\"a\" :\r\n [ true , false , null ] } ", `{"a":[true,false,null]}`},
		{"control characters escaped", `["a\u0000b\n"]`, `["a\u0000b\n"]`},
		{"no HTML escaping", `["<&>"]`, `["<&>"]`},
		{"line separators kept", "[\"\u2028\"]", "[\"\u2028\"]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Parse([]byte(c.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.in, err)
			}
			if got := string(v.Encode()); got != c.encoded {
				t.Fatalf("Encode = %s, want %s", got, c.encoded)
			}
			again, err := Parse(v.Encode())
			if err != nil || !again.Equal(v) {
				t.Fatalf("the encoding does not read back the same: %v", err)
			}
		})
	}
}

func TestGetIsExact(t *testing.T) {
	v, err := Parse([]byte(`{"NAME":"x","Name":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Get("name"); ok {
		t.Fatal(`Get("name") matched a member that is not exactly "name"`)
	}
	if got, _ := v.Get("Name"); got.Str != "y" {
		t.Fatalf(`Get("Name") = %q`, got.Str)
	}
}

func TestFoldCollision(t *testing.T) {
	cases := []struct {
		name, in, path string
		found          bool
	}{
		{"case variants", `{"name":"a","NAME":"b"}`, "/", true},
		{"long s folds to s", `{"status":1,"ſtatus":2}`, "/", true},
		{"Kelvin sign folds to k", `{"key":1,"\u212aey":2}`, "/", true},
		{"nested in arrays", `{"a":[{"b":{"Path":1,"path":2}}]}`, "/a/0/b", true},
		{"pointer escaping", `{"x/y":{"A":1,"a":2}}`, "/x~1y", true},
		{"distinct names", `{"name":"a","names":"b","nAme2":1}`, "", false},
		{"same name in different objects", `{"a":{"n":1},"b":{"N":1}}`, "", false},
		// Above smallObject members the check takes another path.
		{"large object", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"A":10}`, "/", true},
		{"large object, distinct", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}`, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Parse([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			path, _, _, found := v.FoldCollision()
			if found != c.found || path != c.path {
				t.Fatalf("FoldCollision = %q, %v; want %q, %v", path, found, c.path, c.found)
			}
		})
	}
}

// TestFoldFastPaths checks the ASCII shortcuts against the rune-by-rune fold.
func TestFoldFastPaths(t *testing.T) {
	slow := func(name string) string {
		var b strings.Builder
		for _, r := range name {
			b.WriteRune(foldRune(r))
		}
		return b.String()
	}
	for _, name := range []string{"", "name", "Name", "NAME_2", "inputSchema", "a-b.c~d/e", "ſtatus", "\u212aey", "Ünïcode", "mixedÄ"} {
		if got, want := Fold(name), slow(name); got != want {
			t.Errorf("Fold(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestFoldMatchesGoDecoder(t *testing.T) {
	// encoding/json binds a field to any name bytes.EqualFold matches; Fold
	// must put every such name on the same key.
	type target struct{ Name string }
	for _, name := range []string{"name", "NAME", "nAmE", "Name"} {
		var got target
		if err := json.Unmarshal([]byte(`{"`+name+`":"x"}`), &got); err != nil || got.Name != "x" {
			t.Fatalf("encoding/json did not bind %q: %v", name, err)
		}
		if Fold(name) != Fold("Name") {
			t.Fatalf("Fold(%q) = %q, Fold(Name) = %q", name, Fold(name), Fold("Name"))
		}
	}
	type kelvin struct{ Key string }
	var k kelvin
	if err := json.Unmarshal([]byte("{\"\u212aey\":\"x\"}"), &k); err != nil || k.Key != "x" {
		t.Fatalf("encoding/json did not bind the Kelvin sign to Key: %v", err)
	}
	if Fold("\u212aey") != Fold("key") {
		t.Fatal("Fold misses the Kelvin sign")
	}
}

func TestAnyKeepsNumbersExact(t *testing.T) {
	v, err := Parse([]byte(`{"n":123456789012345678901234567890,"s":"x","l":[true,null]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := v.Any().(map[string]any)
	if got["n"] != json.Number("123456789012345678901234567890") {
		t.Fatalf("number = %#v", got["n"])
	}
	if !reflect.DeepEqual(got["l"], []any{true, nil}) {
		t.Fatalf("list = %#v", got["l"])
	}
}

// FuzzParse checks the property the gateway relies on: whatever Parse
// accepts, its encoding reads back identically, and an independent
// tokenizer (encoding/json's, which is exact about names in its token API)
// reads the same members in the same order from the forwarded bytes.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`,
		`{"a":"\ud83d\ude00","b":[1,2.5e3,-0],"c":{"d":null}}`,
		`{"name":"a","NAME":"b"}`, `{"a":1,"a":2}`, `[1e400]`, "{\"\xff\":1}", `{"n\u0061me":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		enc := v.Encode()
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("the encoding of an accepted text is refused: %v\n%s", err, enc)
		}
		if !again.Equal(v) {
			t.Fatalf("the encoding reads back differently:\n%q\n%q", data, enc)
		}
		checkSpans(t, data, v)
		// An independent reader of the text itself, not of the encoding:
		// the strings Parse takes from the text's bytes are the decoded ones.
		if got := tokens(t, data); !reflect.DeepEqual(got, tokensOf(v, nil)) {
			t.Fatalf("encoding/json reads the text differently:\n%q\n%q", got, tokensOf(v, nil))
		}
		if !bytes.Equal(again.Encode(), enc) {
			t.Fatal("encoding is not stable")
		}
		if got := tokens(t, enc); !reflect.DeepEqual(got, tokensOf(v, nil)) {
			t.Fatalf("encoding/json reads other tokens from the forwarded bytes:\n%v\n%v", got, tokensOf(v, nil))
		}
	})
}

func tokens(t *testing.T, data []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("encoding/json cannot read the forwarded bytes: %v", err)
		}
		switch x := tok.(type) {
		case json.Delim:
			out = append(out, string(x))
		case string:
			out = append(out, "s:"+x)
		case json.Number:
			out = append(out, "n:"+string(x))
		case bool:
			out = append(out, map[bool]string{true: "true", false: "false"}[x])
		case nil:
			out = append(out, "null")
		}
	}
}

func tokensOf(v Value, out []string) []string {
	switch v.Kind {
	case Null:
		return append(out, "null")
	case Bool:
		return append(out, map[bool]string{true: "true", false: "false"}[v.Bool])
	case Number:
		return append(out, "n:"+v.Str)
	case String:
		return append(out, "s:"+v.Str)
	case Object:
		out = append(out, "{")
		for _, m := range v.Members {
			out = append(out, "s:"+m.Name)
			out = tokensOf(m.Value, out)
		}
		return append(out, "}")
	}
	out = append(out, "[")
	for _, it := range v.Items {
		out = tokensOf(it, out)
	}
	return append(out, "]")
}

// checkSpans: every value of a parsed tree has a span, and its bytes alone
// read as that value (the splice in internal/mcp forwards such bytes).
func checkSpans(t *testing.T, data []byte, v Value) {
	t.Helper()
	start, end, ok := v.Span()
	if !ok || start < 0 || end > len(data) || start >= end {
		t.Fatalf("span %d..%d (%v) of %s in %q", start, end, ok, v.Kind, data)
	}
	alone, err := Parse(data[start:end])
	if err != nil || !alone.Equal(v) {
		t.Fatalf("the span %q of %q does not read as its value: %v", data[start:end], data, err)
	}
	if start > 0 && !isSeparator(data[start-1]) && data[start-1] != '[' && data[start-1] != '{' {
		t.Fatalf("span %q of %q starts inside a token", data[start:end], data)
	}
	for _, m := range v.Members {
		checkSpans(t, data, m.Value)
	}
	for _, it := range v.Items {
		checkSpans(t, data, it)
	}
}

// TestSpans: the span of each value is its own bytes, whatever whitespace,
// escapes and separators surround it; a value built by hand has none.
func TestSpans(t *testing.T) {
	for _, in := range []string{
		`1`, ` "x" `, "\t[ 1 ,\n2\r\n, [ ] , { } ]\n", `{"a" : {"b":[true,false,null]} , "c\u0041":"\ud83d\ude00"}`,
		`[{"name":"a"},{"name":"b","x":[{"tools":[]}]},-0.5e+3]`,
	} {
		v, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		checkSpans(t, []byte(in), v)
	}
	v, _ := Parse([]byte(`[10, 20]`))
	if s, e, _ := v.Items[1].Span(); s != 5 || e != 7 {
		t.Fatalf("span of 20 in [10, 20] is %d..%d", s, e)
	}
	if _, _, ok := (Value{Kind: Null}).Span(); ok {
		t.Fatal("a built value has a span")
	}
}

// TestKnownFolds: the precomputed folds are what folding computes.
func TestKnownFolds(t *testing.T) {
	for name, folded := range knownFolds {
		if got := Fold(strings.Clone(name + "x"))[:len(name)]; got != folded {
			t.Fatalf("Fold(%q) = %q, known %q", name, got, folded)
		}
		if got := Fold(name); got != folded {
			t.Fatalf("Fold(%q) = %q", name, got)
		}
	}
}

// TestParseAfterParse: Parse reuses its decoder and stacks; a text read
// after a refused one, a deep one or a large one is checked as strictly
// as the first text read, and the trees of earlier texts are untouched.
func TestParseAfterParse(t *testing.T) {
	first, err := Parse([]byte(`{"a":[1,{"b":"c"}],"d":"e"}`))
	if err != nil {
		t.Fatal(err)
	}
	big := `[` + strings.Repeat(`{"name":"x","v":[1,2]},`, 20000) + `0]`
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"a":1,"b":{"c":[1,2,`, false},
		{`{"a":1,"a":2}`, false},
		{`{"x":{"a":1},"y":{"a":1}}`, true},
		{big, true},
		{`{"n":{"a":1,"a":2}}`, false},
		{`[1e400]`, false},
		{"{\"\xff\":1}", false},
		{`{"a":1} {}`, false},
		{`{"a":1,"b":2}`, true},
	} {
		_, err := Parse([]byte(c.in))
		if (err == nil) != c.ok {
			t.Fatalf("Parse(%.40q): %v, want ok %v", c.in, err, c.ok)
		}
	}
	if got := string(first.Encode()); got != `{"a":[1,{"b":"c"}],"d":"e"}` {
		t.Fatalf("an earlier tree changed: %s", got)
	}
}
