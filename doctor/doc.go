// Package doctor runs the preflight checks of 'rebound doctor': can this
// machine, this process and this interface run 'rebound serve' in xdp
// mode, and at what cost where not.
//
// Each check returns Findings: PASS, WARN (serve runs, slower or with a
// fallback) or FAIL (xdp mode will not work), with one line saying what was
// found and, for WARN and FAIL, what fixes it. Exit maps findings to the
// command's exit code: 0 ready, 1 degraded, 2 not possible.
//
//	findings := doctor.Run(doctor.Options{Iface: "eth0"})
//	code, verdict := doctor.Exit(findings)
//
// Checks read the machine through a System: a filesystem root for /proc
// and /sys, and hooks for what is not a file (netlink, ethtool, sockets,
// BPF). Real() is this machine; tests build one on a temporary directory
// with fake hooks.
//
// Gotchas:
//   - Interface facts come from netlink and ethtool, which answer for the
//     network namespace of the calling thread; /sys/class/net answers for
//     the namespace sysfs was mounted in. Sysfs values are used only when
//     the ifindex there matches netlink's, and Run must stay on the calling
//     goroutine (a test runs it inside a namespace on a locked thread).
//   - /proc/sys/net/core/bpf_jit_enable exists only in the host's network
//     namespace; elsewhere the JIT is judged from the kernel config.
//   - Options.Probe attaches an XDP_PASS program in driver mode for a
//     moment: on some NICs that resets the rings (a short traffic blip).
package doctor
