// Package cpuset reads CPU lists as the kernel writes them ("0-3,8,10-11",
// the format of taskset -c, /proc/irq/N/smp_affinity_list and
// Cpus_allowed_list) and pins the calling OS thread to one CPU.
//
// Pin acts on the calling thread only: call it from a goroutine locked to
// its thread (runtime.LockOSThread), and let that goroutine end locked (or
// keep it locked), so that the pinned thread never goes back to the Go
// scheduler's pool to run other goroutines.
package cpuset

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxCPU is one past the highest CPU number a list may name (CPU_SETSIZE
// of unix.CPUSet).
const MaxCPU = 1024

// Parse reads a CPU list: comma-separated CPU numbers and ranges a-b, in
// the order given (the order matters: the first CPU is queue 0's). A CPU
// may not appear twice.
func Parse(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("cpu list: empty")
	}
	var cpus []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: %q is not a CPU number or a range a-b", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: %q is not a range a-b with a <= b", s, part)
			}
		}
		if b >= MaxCPU {
			return nil, fmt.Errorf("cpu list %q: CPU %d: at most %d", s, b, MaxCPU-1)
		}
		for c := a; c <= b; c++ {
			if seen[c] {
				return nil, fmt.Errorf("cpu list %q: CPU %d twice", s, c)
			}
			seen[c] = true
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Format writes CPUs as a list with ranges ("0-3,8"), in the order given.
func Format(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Allowed returns the CPUs the calling thread may run on (its affinity
// mask: taskset, a cgroup's cpuset, or Pin), in increasing order. Called
// from a thread that was not pinned, that is the process's.
func Allowed() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, os.NewSyscallError("sched_getaffinity", err)
	}
	var cpus []int
	for c := 0; c < MaxCPU; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Check returns an error naming the first CPU of cpus this process may not
// run on.
func Check(cpus []int) error {
	allowed, err := Allowed()
	if err != nil {
		return err
	}
	ok := map[int]bool{}
	for _, c := range allowed {
		ok[c] = true
	}
	for _, c := range cpus {
		if !ok[c] {
			return fmt.Errorf("CPU %d is not one this process may run on (%s)", c, Format(allowed))
		}
	}
	return nil
}

// Pin binds the calling OS thread to one CPU. The caller has locked its
// goroutine to the thread.
func Pin(cpu int) error {
	if cpu < 0 || cpu >= MaxCPU {
		return fmt.Errorf("pin to CPU %d: out of range", cpu)
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, os.NewSyscallError("sched_setaffinity", err))
	}
	return nil
}
