//go:build unix

package mcserve

import (
	"syscall"
	"time"
)

// rusage returns the process's user and system CPU time (memcached's
// rusage_user and rusage_system).
func rusage() (user, system time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
