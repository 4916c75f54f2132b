//go:build linux && cgo

// cgo compiles only the .c files in the package directory, so this shim
// pulls in the C core from csrc/. csrc_embed.go makes edits there part of
// the build cache key.
#include "csrc/ioloop.c"
#include "csrc/ioloop_capi.c"
