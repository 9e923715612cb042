package gateway

import (
	"fmt"
	"strings"
)

// checkRequestPath refuses a request path that two HTTP servers could read
// as different paths: the gateway decides on the path it routes, and an
// ingress in front of it or the backend behind it must not be able to
// normalize it into another endpoint (/hr/../finance, %2e%2e, %2f,
// backslashes, Tomcat's ..;). Legitimate MCP endpoint paths need none of it.
func checkRequestPath(raw string) error {
	if !strings.HasPrefix(raw, "/") {
		return fmt.Errorf("request target %q is not an absolute path", abbreviate(raw, 80))
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c <= 0x20 || c == 0x7f:
			return fmt.Errorf("request path has a control character or space at byte %d", i)
		case c == '\\':
			return fmt.Errorf("request path %q has a backslash, which some servers read as a slash", abbreviate(raw, 80))
		case c == ';':
			return fmt.Errorf("request path %q has a ';' (path parameters), which some servers strip", abbreviate(raw, 80))
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return fmt.Errorf("request path %q has a malformed percent-encoding", abbreviate(raw, 80))
			}
			switch b := unhex(raw[i+1])<<4 | unhex(raw[i+2]); {
			case b == '/' || b == '\\' || b == '.' || b == '%' || b == ';' || b < 0x20 || b == 0x7f:
				return fmt.Errorf("request path %q percent-encodes %q, which servers decode differently", abbreviate(raw, 80), string(rune(b)))
			}
			i += 2
		}
	}
	segments := strings.Split(raw[1:], "/")
	for i, seg := range segments {
		switch {
		case seg == "." || seg == "..":
			return fmt.Errorf("request path %q has a dot-segment", abbreviate(raw, 80))
		case seg == "" && i != len(segments)-1:
			return fmt.Errorf("request path %q has an empty segment (//)", abbreviate(raw, 80))
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
