package mcp

import "slices"

// Lists is FindLists on the message's result (none when it is not a
// response). A message ParseReply read and nothing changed since gives each
// item's Raw as the bytes received, without encoding it.
func (m *Message) Lists(method string) ([]List, error) {
	result, ok := m.Result()
	if !ok {
		return nil, nil
	}
	return findLists(m.src, result, method)
}

// Splice is the message as the backend sent it, byte for byte, with the
// items keep refuses cut out of lists (which m.Lists found); ok is false
// when the message has no bytes as received (it was changed, or not read by
// ParseReply), and the caller then filters the tree (FilterLists) and
// encodes it. Nothing is encoded: the backend's member order, whitespace
// and escapes reach the client, and a large list costs a copy.
//
// Why the client reads exactly what the policy decided on: ParseReply read
// the whole text strictly (ijson: I-JSON, no duplicate names, valid UTF-8,
// numbers a double holds), so it has one reading, the tree the gateway
// filtered. Each cut removes whole elements of a list's array together with
// one ',' per element and the whitespace beside them, nothing else: every
// remaining token is unchanged and in order, so by JSON's grammar the
// result is that array without those elements, and every other value,
// whose bytes are untouched, reads as before. It stays I-JSON: cuts fall
// between ASCII tokens (UTF-8 stays valid), and removing array elements
// cannot make two member names of one object equal or collide when folded.
// That reading is the tree FilterLists makes with the same keep (the
// splice tests and FuzzFilterSplice check it); it differs from the
// canonical encoding of that tree only in whitespace and in how strings are
// escaped, which every JSON reader decodes alike (RFC 8259, sections 2 and
// 7).
func (m *Message) Splice(lists []List, keep func(ListKey, ListItem) bool) (out []byte, ok bool) {
	if m.src == nil {
		return nil, false
	}
	from, to, ok := m.value.Span()
	if !ok {
		return nil, false
	}
	var cuts []span
	for _, l := range lists {
		c, ok := listCuts(l, keep)
		if !ok {
			return nil, false
		}
		cuts = append(cuts, c...)
	}
	if len(cuts) == 0 {
		return m.src[from:to:to], true
	}
	// Two lists are two members of one result: their arrays, and so their
	// cuts, do not overlap; sorted, they are cut in one pass.
	slices.SortFunc(cuts, func(a, b span) int { return a.start - b.start })
	n := to - from
	for _, c := range cuts {
		n -= c.end - c.start
	}
	out = make([]byte, 0, n)
	at := from
	for _, c := range cuts {
		if c.start < at || c.end > to {
			// Spans outside the message or overlapping: not this
			// message's lists. Never guess; the caller re-encodes.
			return nil, false
		}
		out = append(out, m.src[at:c.start]...)
		at = c.end
	}
	return append(out, m.src[at:to]...), true
}

// span is a range of bytes, [start, end).
type span struct{ start, end int }

// listCuts is what to cut from the text to drop the items keep refuses
// from one list: for each run of dropped elements, the elements and the
// comma after each (when an element follows the run), else the comma
// before the run (when one precedes it), else (every element dropped)
// everything from the first element to the end of the last, leaving the
// brackets and the whitespace inside them.
func listCuts(l List, keep func(ListKey, ListItem) bool) ([]span, bool) {
	elems := l.array.Items
	if len(elems) != len(l.Items) {
		return nil, false
	}
	spans := make([]span, len(elems))
	kept := make([]bool, len(elems))
	for i, e := range elems {
		s, end, ok := e.Span()
		if !ok {
			return nil, false
		}
		// keep is asked once per item, in order, as FilterLists asks it.
		spans[i], kept[i] = span{s, end}, keep(l.Key, l.Items[i])
	}
	var cuts []span
	for i := 0; i < len(elems); {
		if kept[i] {
			i++
			continue
		}
		j := i // the run of dropped elements is i..j
		for j+1 < len(elems) && !kept[j+1] {
			j++
		}
		switch {
		case j+1 < len(elems):
			cuts = append(cuts, span{spans[i].start, spans[j+1].start})
		case i > 0:
			cuts = append(cuts, span{spans[i-1].end, spans[j].end})
		default:
			cuts = append(cuts, span{spans[0].start, spans[j].end})
		}
		i = j + 1
	}
	return cuts, true
}
