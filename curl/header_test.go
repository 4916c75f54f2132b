//go:build linux && cgo

package curl

import (
	"net/textproto"
	"reflect"
	"testing"
)

func TestParseHeader(t *testing.T) {
	for _, c := range []struct {
		block  string
		status string
		want   map[string][]string
	}{
		{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\n\r\n", "200 OK",
			map[string][]string{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}}},
		{"HTTP/2 404 \r\ncontent-length: 0\r\nx-custom: v\r\n\r\n", "404",
			map[string][]string{"Content-Length": {"0"}, "X-Custom": {"v"}}},
		{"HTTP/1.0 200 OK\nX-Folded: a\n  b\n\tc\nNo-Colon\nX-Empty:\n\n", "200 OK",
			map[string][]string{"X-Folded": {"a b c"}, "X-Empty": {""}}},
		{"HTTP/1.1 204 No Content\r\n\r\n", "204 No Content", map[string][]string{}},
		{"HTTP/1.1 200 OK\r\nA: 1\r\n", "200 OK", map[string][]string{"A": {"1"}}}, // no blank line
		{"HTTP/1.1 200 OK\r\nA:    spaced   \r\n\r\nTrailer: after\r\n", "200 OK", map[string][]string{"A": {"spaced"}}},
	} {
		status, h := parseHeader(c.block)
		if status != c.status {
			t.Errorf("%q: status %q, want %q", c.block, status, c.status)
		}
		got := map[string][]string(h)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %v, want %v", c.block, got, c.want)
		}
	}
}

func TestValidation(t *testing.T) {
	for s, want := range map[string]bool{"GET": true, "X-Custom_1.0~": true, "": false, "A B": false, "A:B": false, "é": false} {
		if validToken(s) != want {
			t.Errorf("validToken(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"ok value": true, "": true, "a\rb": false, "a\nb": false, "a\x00": false} {
		if validValue(s) != want {
			t.Errorf("validValue(%q) = %v", s, !want)
		}
	}
}

func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"Content-Type", "content-type", "X-A", "x-a-b", "Www-Authenticate", "WWW-Authenticate",
		"A b", "Ünicode", "-lead", "trail-", "ALLCAPS", "", "X_Y"} {
		if got, want := canonicalKey(k), textproto.CanonicalMIMEHeaderKey(k); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestHasPrefixFold(t *testing.T) {
	for s, want := range map[string]bool{"https://x": true, "HTTPS://x": true, "http://x": false, "https:/": false, "": false} {
		if hasPrefixFold(s, "https://") != want {
			t.Errorf("hasPrefixFold(%q) = %v", s, !want)
		}
	}
}
