//go:build !plan9

package client

import "syscall"

var errConnRefused error = syscall.ECONNREFUSED
