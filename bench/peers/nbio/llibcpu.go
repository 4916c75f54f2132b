package main

import (
	"runtime"
	_ "unsafe" // go:linkname

	_ "github.com/lesismal/llib/std/crypto/tls" // the variable below is its
	"golang.org/x/sys/cpu"
)

// llibHasAESGCM is llib's TLS's belief that the CPU has AES-GCM hardware.
// llib's fork of crypto/tls reads it from its own copy of Go's
// internal/cpu, which nothing initializes (the runtime initializes only the
// standard library's), so it is always false: llib then puts
// ChaCha20-Poly1305 first on every machine, where crypto/tls, OpenSSL and
// the other peers of the suite pick AES-128-GCM on AES-NI hardware. The
// peer sets it to what llib computes when its detection works (the same
// test as crypto/tls's), so that nbio runs the suite's cipher; nothing else
// changes. TestTLSPeersServeCorrectly checks what every peer negotiates.
//
//go:linkname llibHasAESGCM github.com/lesismal/llib/std/crypto/tls.hasAESGCMHardwareSupport
var llibHasAESGCM bool

// fixLLibAESDetection runs before the first handshake, which is when llib
// builds its preference lists from the variable.
func fixLLibAESDetection() {
	llibHasAESGCM = runtime.GOARCH == "amd64" && cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ ||
		runtime.GOARCH == "arm64" && cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
}
