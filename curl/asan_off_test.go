//go:build !asan

package curl

const asanBuild = false
