package audit

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Audit records carry strings callers choose: tool names, methods, reasons
// that quote them, subjects, object names, snapshots of configuration. Read
// raw in a terminal, a log viewer or a line-based collector, a control
// character in them can forge or hide text: ESC sequences recolour or erase
// lines, CR and LF (and U+2028/U+2029 for JavaScript readers) start fake
// records, bidi overrides show "exe.txt" for "txt.exe". PostgreSQL refuses
// NUL and invalid UTF-8 outright, which would drop the whole batch. So every
// record is escaped once, in Normalize, before any sink sees it: each such
// character becomes a visible escape (\u001b, \x__ for a byte that is not
// UTF-8), the same in every sink and in the store.

// unsafeRune reports the characters the audit trail never holds raw.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f: // C0, DEL, C1
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c: // bidi marks
		return true
	}
	return false
}

// needsEscape is the fast check: most strings are plain ASCII.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			if c < 0x80 {
				return true
			}
			// Non-ASCII: decide rune by rune from here.
			for _, r := range s[i:] {
				if unsafeRune(r) || r == utf8.RuneError {
					return true
				}
			}
			return false
		}
	}
	return false
}

// EscapeText returns s with every unsafe character replaced by \uXXXX and
// every byte that is not UTF-8 by \xXX. Text without them is returned as it
// is; escaping twice changes nothing more.
func EscapeText(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func escapeList(list []string) []string {
	for i, s := range list {
		if !needsEscape(s) {
			continue
		}
		// Copy before the first change: the caller's slice is not ours.
		out := make([]string, len(list))
		copy(out, list[:i])
		for j := i; j < len(list); j++ {
			out[j] = EscapeText(list[j])
		}
		return out
	}
	return list
}

// escapeJSON applies EscapeText to the string values and member names of a
// JSON text, so they decode to the visible escapes: a JSON escape of an
// unsafe character (\u001b, \n) becomes the escaped backslash followed by
// the same letters (\\u001b, \\u000a), and a raw one the same. The text stays
// valid JSON of the same shape; numbers, whitespace and other escapes are
// kept byte for byte. Text that is not JSON is returned unchanged, for
// Validate to refuse.
func escapeJSON(raw []byte) []byte {
	if !jsonNeedsEscape(raw) {
		return raw
	}
	out := make([]byte, 0, len(raw)+16)
	inString := false
	for i := 0; i < len(raw); {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			out = append(out, c)
			i++
			continue
		}
		switch {
		case c == '"':
			inString = false
			out = append(out, c)
			i++
		case c == '\\' && i+1 < len(raw):
			r, n := jsonEscape(raw[i:])
			if n == 0 {
				return raw // not JSON
			}
			if r >= 0 && unsafeRune(r) {
				out = fmt.Appendf(out, `\\u%04x`, r)
			} else {
				out = append(out, raw[i:i+n]...)
			}
			i += n
		default:
			r, size := utf8.DecodeRune(raw[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				out = fmt.Appendf(out, `\\x%02x`, c)
			case unsafeRune(r):
				out = fmt.Appendf(out, `\\u%04x`, r)
			default:
				out = append(out, raw[i:i+size]...)
			}
			i += size
		}
	}
	return out
}

// jsonEscape reads the escape sequence at the start of b (b[0] is '\'): the
// character it stands for (-1 for one EscapeText keeps: \" \\ \/ and
// surrogate halves) and its length, 0 if it is malformed.
func jsonEscape(b []byte) (rune, int) {
	switch b[1] {
	case '"', '\\', '/':
		return -1, 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		if len(b) < 6 {
			return 0, 0
		}
		var r rune
		for _, h := range b[2:6] {
			switch {
			case h >= '0' && h <= '9':
				r = r<<4 | rune(h-'0')
			case h >= 'a' && h <= 'f':
				r = r<<4 | rune(h-'a'+10)
			case h >= 'A' && h <= 'F':
				r = r<<4 | rune(h-'A'+10)
			default:
				return 0, 0
			}
		}
		if r >= 0xd800 && r <= 0xdfff {
			return -1, 6
		}
		return r, 6
	}
	return 0, 0
}

// jsonNeedsEscape is the fast check for escapeJSON: no escape sequence and
// nothing outside printable ASCII means nothing to do.
func jsonNeedsEscape(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' || c >= 0x7f {
			return true
		}
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' { // JSON whitespace aside
			return true
		}
	}
	return false
}

// ASCIIJSON rewrites every non-ASCII character of a JSON text as a \u
// escape (a surrogate pair beyond U+FFFF). The text decodes to the same
// value, and no terminal or log viewer can be made to show forged lines
// or reordered text by it. Invalid UTF-8 becomes U+FFFD, as encoding/json
// writes it. A text that is already ASCII is returned as it is.
func ASCIIJSON(raw []byte) []byte {
	i := 0
	for i < len(raw) && raw[i] < utf8.RuneSelf {
		i++
	}
	if i == len(raw) {
		return raw
	}
	out := make([]byte, 0, len(raw)+32)
	out = append(out, raw[:i]...)
	for i < len(raw) {
		c := raw[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(raw[i:])
		i += n
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError || r2 != utf8.RuneError {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			continue
		}
		out = fmt.Appendf(out, `\u%04x`, r)
	}
	return out
}
