//go:build !linux || !cgo

package curl

import (
	"errors"
	"testing"

	"github.com/ioloop-go/ioloop"
)

func TestUnsupportedWithoutCgo(t *testing.T) {
	if _, err := NewClient(ioloop.Instance()); !errors.Is(err, ioloop.ErrUnsupported) {
		t.Fatalf("NewClient without cgo: %v, want ErrUnsupported", err)
	}
}
