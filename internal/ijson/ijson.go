// Package ijson gives the gateway one reading of a JSON text: it accepts
// only I-JSON (RFC 7493) — valid UTF-8 without lone surrogate escapes, no
// duplicate member names at any depth, numbers a double can hold, one value
// and JSON whitespace around it — and keeps what it read as an ordered tree
// whose encoding is what the gateway forwards, each value with the span of
// bytes it was read from (so a list can be forwarded as received, minus
// whole elements: mcp.Message.Splice).
//
// Why not encoding/json: it matches member names case-insensitively (with
// Unicode folding), keeps the last of duplicate names, replaces invalid
// UTF-8 and fails on 1e400, so a policy that decides on its reading can be
// told one thing while a JavaScript, Python or other Go server reads
// another. The tokenizer is go-json-experiment's jsontext (the Go team's
// json/v2 line), which already refuses duplicates, invalid UTF-8 and lone
// surrogates; this package adds the number range, the whole-text rule, the
// tree and its canonical encoding.
package ijson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// MaxDepth bounds nesting; the tree is walked recursively and MCP messages
// are shallow. A deeper text is refused, never truncated.
const MaxDepth = 128

// Kind is the JSON type of a Value.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Number
	String
	Object
	Array
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	case Object:
		return "object"
	}
	return "array"
}

// Value is one JSON value as read. Numbers keep their literal text (exact,
// never rounded); strings are decoded.
type Value struct {
	Kind Kind
	Bool bool
	// start and end are the bytes of the text Parse read this value from
	// (end is 0 when there is none: see Span). Declared here, between the
	// small fields, they fill padding: a Value is no larger for them.
	start, end int32
	// Str is a string's decoded text or a number's literal.
	Str     string
	Members []Member
	Items   []Value
}

// Span is where v was read in the text given to Parse: data[start:end] is
// v's own bytes, from its first byte to its last (no surrounding
// whitespace). ok is false for a value Parse did not read (one the caller
// built) and for a text of 2 GiB or more. A Value copied from a parsed one
// and then changed keeps the span of what was read: a caller that changes
// a tree must not use its spans any more.
func (v Value) Span() (start, end int, ok bool) {
	return int(v.start), int(v.end), v.end > 0
}

// Member is one object member, in the order it came.
type Member struct {
	Name  string
	Value Value
}

// SyntaxError is a text that is not I-JSON. Offset is where it was found.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s (at byte %d)", e.Msg, e.Offset)
}

// Parse reads data as exactly one I-JSON value.
func Parse(data []byte) (Value, error) {
	st := states.Get().(*parseState)
	defer st.release(len(data))
	st.rd.Reset(data)
	st.dec.Reset(&st.rd, jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	p := parser{
		dec:     st.dec,
		data:    data,
		spans:   len(data) <= math.MaxInt32,
		members: st.members[:0],
		items:   st.items[:0],
	}
	defer func() { st.members, st.items = p.members, p.items }()
	v, err := p.readValue(0)
	if err != nil {
		return Value{}, err
	}
	dec := p.dec
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return Value{}, &SyntaxError{Offset: dec.InputOffset(), Msg: "unexpected data after the JSON value"}
	}
	return v, nil
}

func syntaxErr(dec *jsontext.Decoder, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "jsontext: ")
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		msg = "unexpected end of JSON input"
	}
	return &SyntaxError{Offset: dec.InputOffset(), Msg: msg}
}

// parseState is what one Parse needs besides the tree it returns, reused
// from one Parse to the next: the decoder (Reset reads afresh, with the
// same options), its reader, and the stacks' memory. Allocating them for
// every message was most of what reading a small message (a tools/call
// body) cost. Nothing of it is part of a returned Value: members and items
// are copied out, strings are the parser's own.
type parseState struct {
	dec     *jsontext.Decoder
	rd      bytes.Reader
	members []Member
	items   []Value
}

var states = sync.Pool{New: func() any { return &parseState{dec: jsontext.NewDecoder(bytes.NewReader(nil))} }}

// A state is kept for the next Parse only after a text of at most
// maxPooledText bytes and with stacks of at most maxPooledStack entries:
// the decoder's buffer grows to the largest token it read, and a list of
// 100,000 tools or one 30 MB string should not stay pinned afterwards.
const (
	maxPooledText  = 1 << 20
	maxPooledStack = 1 << 14
)

// release clears the stacks (so they hold no strings of the last text),
// lets go of the text and returns the state to the pool; n is the length
// of the text just read.
func (st *parseState) release(n int) {
	if n > maxPooledText || cap(st.members) > maxPooledStack || cap(st.items) > maxPooledStack {
		return
	}
	clear(st.members[:cap(st.members)])
	clear(st.items[:cap(st.items)])
	st.members, st.items = st.members[:0], st.items[:0]
	st.rd.Reset(nil)
	st.dec.Reset(&st.rd)
	states.Put(st)
}

// parser is one Parse: the decoder, the text it reads (for the spans) and
// the stacks the members and items of the objects and arrays being read
// gather on.
type parser struct {
	dec     *jsontext.Decoder
	data    []byte
	spans   bool
	members []Member
	items   []Value
	// strs are the short strings read so far, each once (str).
	strs map[string]string
}

// readValue reads one value and records its span. The decoder's offset
// before the value is just past the previous token; what lies between that
// and the value's first byte can only be whitespace and one ',' or ':'
// (the decoder has just accepted the text up to the value's end), so
// skipping those finds the start without a second tokenizer.
func (p *parser) readValue(depth int) (Value, error) {
	prev := p.dec.InputOffset()
	v, err := p.readTokens(depth)
	if err != nil || !p.spans {
		return v, err
	}
	start := int(prev)
	for start < len(p.data) && isSeparator(p.data[start]) {
		start++
	}
	v.start, v.end = int32(start), int32(p.dec.InputOffset())
	return v, nil
}

// str is the decoded text of the string token tok, which the decoder has
// just read (and checked: valid UTF-8, no control characters) after the
// offset prev. Its bytes in the text, when they hold no escape, are its
// text verbatim, so the text is taken from them, and those of at most
// shared bytes are allocated once per Parse: a string per member name
// (repeated in every item of a list) was a tenth of a large list's parse.
// Any other string is decoded by the token.
func (p *parser) str(tok jsontext.Token, prev int64, shared int) string {
	start, end := int(prev), int(p.dec.InputOffset())
	for start < end && isSeparator(p.data[start]) {
		start++
	}
	raw := p.data[start:end]
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return tok.String()
	}
	raw = raw[1 : len(raw)-1]
	if len(raw) > shared || len(p.data) < minSharing {
		return string(raw)
	}
	if s, ok := p.strs[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if p.strs == nil {
		p.strs = make(map[string]string, 64)
	}
	if len(p.strs) < maxStrings {
		p.strs[s] = s
	}
	return s
}

// The longest member name and string value str shares, and how many
// strings it keeps: names repeat, and among values the short ones ("type":
// "object"); longer values (tool names, descriptions) are mostly unique,
// and looking them up only to add them cost more than it saved.
const (
	maxSharedName  = 32
	maxSharedValue = 8
	maxStrings     = 4096
	// minSharing is the smallest text whose strings are shared: the
	// table costs more than it saves on a message of a few names (a
	// tools/call body parsed in 2.3x the time with it).
	minSharing = 4096
)

// isSeparator is JSON whitespace, ',' or ':'.
func isSeparator(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ':'
}

func (p *parser) readTokens(depth int) (Value, error) {
	dec := p.dec
	prev := dec.InputOffset()
	tok, err := dec.ReadToken()
	if err != nil {
		return Value{}, syntaxErr(dec, err)
	}
	switch tok.Kind() {
	case 'n':
		return Value{Kind: Null}, nil
	case 't', 'f':
		return Value{Kind: Bool, Bool: tok.Bool()}, nil
	case '"':
		return Value{Kind: String, Str: p.str(tok, prev, maxSharedValue)}, nil
	case '0':
		lit := tok.String()
		if err := checkNumber(lit); err != nil {
			return Value{}, &SyntaxError{Offset: dec.InputOffset(), Msg: err.Error()}
		}
		return Value{Kind: Number, Str: lit}, nil
	case '{':
		if depth >= MaxDepth {
			return Value{}, &SyntaxError{Offset: dec.InputOffset(), Msg: fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
		}
		// Members gather on the parser's stack (a nested value's own
		// members come and go above them) and are copied once into a
		// slice of their exact size: appending to each object's own slice
		// grew it by doubling, a fifth of a large list's parse.
		base := len(p.members)
		for dec.PeekKind() != '}' {
			prev := dec.InputOffset()
			tok, err := dec.ReadToken()
			if err != nil {
				return Value{}, syntaxErr(dec, err)
			}
			// A token is only valid until the decoder's next call.
			name := p.str(tok, prev, maxSharedName)
			mv, err := p.readValue(depth + 1)
			if err != nil {
				return Value{}, err
			}
			p.members = append(p.members, Member{Name: name, Value: mv})
		}
		if _, err := dec.ReadToken(); err != nil {
			return Value{}, syntaxErr(dec, err)
		}
		v := Value{Kind: Object, Members: make([]Member, len(p.members)-base)}
		copy(v.Members, p.members[base:])
		p.members = p.members[:base]
		return v, nil
	case '[':
		if depth >= MaxDepth {
			return Value{}, &SyntaxError{Offset: dec.InputOffset(), Msg: fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
		}
		base := len(p.items) // as for an object's members
		for dec.PeekKind() != ']' {
			item, err := p.readValue(depth + 1)
			if err != nil {
				return Value{}, err
			}
			p.items = append(p.items, item)
		}
		if _, err := dec.ReadToken(); err != nil {
			return Value{}, syntaxErr(dec, err)
		}
		v := Value{Kind: Array, Items: make([]Value, len(p.items)-base)}
		copy(v.Items, p.items[base:])
		p.items = p.items[:base]
		return v, nil
	}
	// PeekKind returns 0 on a syntax error; reading again reports it.
	if _, err := dec.ReadToken(); err != nil {
		return Value{}, syntaxErr(dec, err)
	}
	return Value{}, &SyntaxError{Offset: dec.InputOffset(), Msg: "unexpected token"}
}

// checkNumber refuses what a double cannot hold: a literal that overflows
// (JavaScript reads Infinity, Go's decoder fails) or a non-zero literal that
// underflows to zero. Precision beyond a double's is kept in the literal.
func checkNumber(lit string) error {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return fmt.Errorf("number %s is outside the range of a double (RFC 7493)", abbreviate(lit))
	}
	if f == 0 && nonZeroMantissa(lit) {
		return fmt.Errorf("number %s underflows a double (RFC 7493)", abbreviate(lit))
	}
	return nil
}

func nonZeroMantissa(lit string) bool {
	for _, r := range lit {
		switch {
		case r == 'e' || r == 'E':
			return false
		case r >= '1' && r <= '9':
			return true
		}
	}
	return false
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// Equal reports whether v and w are one reading: the same kinds, strings,
// numbers' literals and member names, in the same order. Where either was
// read from is not compared.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind || v.Bool != w.Bool || v.Str != w.Str ||
		len(v.Members) != len(w.Members) || len(v.Items) != len(w.Items) {
		return false
	}
	for i := range v.Members {
		if v.Members[i].Name != w.Members[i].Name || !v.Members[i].Value.Equal(w.Members[i].Value) {
			return false
		}
	}
	for i := range v.Items {
		if !v.Items[i].Equal(w.Items[i]) {
			return false
		}
	}
	return true
}

// Get returns the member named exactly name.
func (v Value) Get(name string) (Value, bool) {
	for i := range v.Members {
		if v.Members[i].Name == name {
			return v.Members[i].Value, true
		}
	}
	return Value{}, false
}

// GetFolded returns the first member whose name folds to name's fold
// ("Description" for "description"), as a lenient Go client binds it.
func (v Value) GetFolded(name string) (Value, bool) {
	folded := Fold(name)
	for i := range v.Members {
		if Fold(v.Members[i].Name) == folded {
			return v.Members[i].Value, true
		}
	}
	return Value{}, false
}

// Encode is the canonical compact encoding of v: members in the order read,
// strings re-escaped (no HTML escaping), numbers as their literal.
func (v Value) Encode() []byte { return v.AppendTo(nil) }

// AppendTo appends Encode's bytes to dst.
func (v Value) AppendTo(dst []byte) []byte { return v.appendTo(dst, false) }

// appendTo encodes v, with every object's members sorted by name when
// sorted is set (AppendSorted).
func (v Value) appendTo(dst []byte, sorted bool) []byte {
	switch v.Kind {
	case Null:
		return append(dst, "null"...)
	case Bool:
		if v.Bool {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return append(dst, v.Str...)
	case String:
		return appendString(dst, v.Str)
	case Object:
		members := v.Members
		if sorted {
			members = sortedMembers(members)
		}
		dst = append(dst, '{')
		for i, m := range members {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, m.Name)
			dst = append(dst, ':')
			dst = m.Value.appendTo(dst, sorted)
		}
		return append(dst, '}')
	}
	dst = append(dst, '[')
	for i, it := range v.Items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = it.appendTo(dst, sorted)
	}
	return append(dst, ']')
}

func appendString(dst []byte, s string) []byte {
	out, err := jsontext.AppendQuote(dst, s)
	if err != nil {
		// Parse only yields valid UTF-8, and the gateway builds its own
		// strings from those; a failure here is a programming error, and
		// the replacement it makes is still valid JSON.
		panic(fmt.Sprintf("ijson: quote %q: %v", s, err))
	}
	return out
}

// Any converts v to the plain Go values the policy engine takes: maps,
// slices, strings, bools, nil and json.Number (the exact literal).
func (v Value) Any() any {
	switch v.Kind {
	case Null:
		return nil
	case Bool:
		return v.Bool
	case Number:
		return json.Number(v.Str)
	case String:
		return v.Str
	case Object:
		m := make(map[string]any, len(v.Members))
		for _, mem := range v.Members {
			m[mem.Name] = mem.Value.Any()
		}
		return m
	}
	s := make([]any, len(v.Items))
	for i, it := range v.Items {
		s[i] = it.Any()
	}
	return s
}
