package tests

import (
	"os"
	"testing"
)

// TestMain removes what the tests built once for the whole binary (the
// example programs, about 13 MB): per-test files use t.TempDir, which
// cleans up by itself.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildExamples.dir != "" {
		if err := os.RemoveAll(buildExamples.dir); err != nil {
			println("tests: removing the example binaries:", err.Error())
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}
