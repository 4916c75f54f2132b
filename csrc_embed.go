package ioloop

import "embed"

// The Go build cache keys a cgo package on the .c files in its own
// directory, not on what they #include (golang/go#24355). ioloop_linux.c
// includes csrc/ioloop.c, so without this an edit under csrc/ would be
// silently ignored by the next build. Embedding the sources makes them part
// of the cache key; the bytes themselves are never used.
//
//go:embed csrc/ioloop.c csrc/ioloop.h csrc/ioloop_capi.c csrc/ioloop_api.h csrc/test/driver.c csrc/test/capi_tests.c
var _ embed.FS
