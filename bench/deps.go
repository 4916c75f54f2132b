//go:build ioloopdep

package main

// Never compiled (no build uses the tag): it keeps `go mod tidy` from
// dropping the requirement on the library, which the suite builds from the
// repository (examples/, the micro-benchmarks) rather than imports. Tidy
// considers every build tag, so this import is enough.
import _ "github.com/ioloop-go/ioloop"
