package client

import "syscall"

var errConnRefused = syscall.ECONNREFUSED
