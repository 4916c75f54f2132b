// Command ioloop-capi-header writes the C header of ioloop's C API
// (csrc/ioloop_api.h, see ioloop.IOLoop.CAPI) for a cgo package in another
// module, which cannot include files from ioloop's module directory:
//
//	//go:generate go run github.com/ioloop-go/ioloop/cmd/ioloop-capi-header -o ioloop_api.h
//
// The header written matches the ioloop version in the caller's go.mod; at
// run time, check the table's version and size once (the header says how).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ioloop-go/ioloop"
)

func main() {
	out := flag.String("o", "", "file to write (default: standard output)")
	flag.Parse()
	if *out == "" {
		fmt.Print(ioloop.CAPIHeader)
		return
	}
	if err := os.WriteFile(*out, []byte(ioloop.CAPIHeader), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "ioloop-capi-header:", err)
		os.Exit(1)
	}
}
