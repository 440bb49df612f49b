package doctor

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Version is a kernel version, major.minor.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v is older than major.minor.
func (v Version) Less(major, minor int) bool {
	return v.Major < major || v.Major == major && v.Minor < minor
}

// ParseVersion reads the major.minor of a kernel release like
// 6.18.44-fc-v782 or 5.15.0-91-generic.
func ParseVersion(release string) (Version, error) {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 || !strings.HasPrefix(release, f[0]) {
		return Version{}, fmt.Errorf("kernel release %q: want major.minor", release)
	}
	maj, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil || maj == 0 {
		return Version{}, fmt.Errorf("kernel release %q: want major.minor", release)
	}
	return Version{maj, minor}, nil
}

const fixUDP = "rebound serve --mode udp (no XDP needed)"

func checkKernel(c *Context) []Finding {
	rel, err := c.Sys.read("/proc/sys/kernel/osrelease")
	if err != nil {
		return []Finding{warn("uname -r", "cannot read the kernel release: %v; features not checked", err)}
	}
	v, err := ParseVersion(rel)
	if err != nil {
		return []Finding{warn("uname -r", "%v; features not checked", err)}
	}
	c.Kernel = v
	fix := "boot a kernel 5.9 or later, or " + fixUDP
	switch {
	case v.Less(4, 18):
		return []Finding{fail(fix, "%s: no AF_XDP sockets (4.18), no need_wakeup (5.4), no bpf_link for XDP (5.9): xdp mode impossible, auto mode serves udp", rel)}
	case v.Less(5, 4):
		return []Finding{fail(fix, "%s: AF_XDP yes, but no need_wakeup (5.4: idle workers would spin a core each) and no bpf_link for XDP (5.9), which serve attaches through: xdp mode fails, auto mode serves udp", rel)}
	case v.Less(5, 9):
		return []Finding{fail(fix, "%s: AF_XDP and need_wakeup yes, but no bpf_link for XDP (5.9), which serve attaches through (it is what detaches the program when serve dies): xdp mode fails, auto mode serves udp", rel)}
	}
	d := fmt.Sprintf("%s: AF_XDP (4.18), need_wakeup (5.4), bpf_link for XDP (5.9)", rel)
	if v.Less(6, 16) {
		d += "; before 6.16 a copy-mode tx kick sends at most 32 frames (serve kicks again)"
	}
	return []Finding{pass("%s", d)}
}

// kernelConfig reads /proc/config.gz, else /boot/config-RELEASE.
func (s *System) kernelConfig(release string) (map[string]string, string, error) {
	var r io.Reader
	where := "/proc/config.gz"
	if b, err := os.ReadFile(s.path(where)); err == nil {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, where, err
		}
		r = zr
	} else {
		where = "/boot/config-" + release
		b, err := os.ReadFile(s.path(where))
		if err != nil {
			return nil, "/proc/config.gz or " + where, err
		}
		r = bytes.NewReader(b)
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = v
		}
	}
	return cfg, where, sc.Err()
}

func checkConfig(c *Context) []Finding {
	rel, _ := c.Sys.read("/proc/sys/kernel/osrelease")
	cfg, where, err := c.Sys.kernelConfig(rel)
	if err != nil {
		return []Finding{pass("not readable (%s): options not checked; af-xdp below tries a socket instead (modprobe configs may provide /proc/config.gz)", where)}
	}
	c.Config = cfg
	var bad []string
	for _, k := range []string{"CONFIG_BPF_SYSCALL", "CONFIG_XDP_SOCKETS"} {
		if cfg[k] != "y" {
			bad = append(bad, k+" not set")
		}
	}
	if len(bad) > 0 {
		return []Finding{fail("a kernel built with CONFIG_BPF_SYSCALL=y and CONFIG_XDP_SOCKETS=y, or "+fixUDP, "%s: %s: no XDP steering or no AF_XDP sockets", where, strings.Join(bad, ", "))}
	}
	if cfg["CONFIG_BPF_JIT"] != "y" {
		return []Finding{warn("a kernel built with CONFIG_BPF_JIT=y", "%s: CONFIG_BPF_JIT not set: the XDP program runs in the interpreter, several times slower per packet", where)}
	}
	jit := "CONFIG_BPF_JIT=y"
	if cfg["CONFIG_BPF_JIT_ALWAYS_ON"] == "y" {
		jit += " (always on)"
	}
	return []Finding{pass("%s: CONFIG_BPF_SYSCALL=y, CONFIG_XDP_SOCKETS=y, %s", where, jit)}
}

func checkJIT(c *Context) []Finding {
	const p = "/proc/sys/net/core/bpf_jit_enable"
	const fix = "sysctl -w net.core.bpf_jit_enable=1"
	v, err := c.Sys.read(p)
	if err != nil {
		// The sysctl is shown in the host's network namespace only.
		switch {
		case c.Config["CONFIG_BPF_JIT_ALWAYS_ON"] == "y":
			return []Finding{pass("JIT always on (CONFIG_BPF_JIT_ALWAYS_ON=y)")}
		case c.Config != nil && c.Config["CONFIG_BPF_JIT"] != "y":
			return []Finding{warn("a kernel built with CONFIG_BPF_JIT=y", "no BPF JIT in this kernel: the XDP program is interpreted, several times slower per packet")}
		}
		return []Finding{pass("%s not readable (a network namespace other than the host's?): not checked", p)}
	}
	switch v {
	case "1":
		return []Finding{pass("JIT on (net.core.bpf_jit_enable=1)")}
	case "2":
		return []Finding{pass("JIT on, with debug output to the kernel log (net.core.bpf_jit_enable=2): sysctl -w net.core.bpf_jit_enable=1 quiets it")}
	case "0":
		return []Finding{warn(fix, "JIT off (net.core.bpf_jit_enable=0): the XDP program is interpreted, several times slower per packet")}
	}
	return []Finding{warn(fix, "net.core.bpf_jit_enable=%q: unexpected value", v)}
}

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
	capIPCLock  = 14
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

func (c *Context) has(bit uint) bool { return c.HasCap && c.Caps&(1<<bit) != 0 }

func (s *System) self() (procfs.Proc, error) {
	fs, err := procfs.NewFS(s.path("/proc"))
	if err != nil {
		return procfs.Proc{}, err
	}
	return fs.Self()
}

func checkCaps(c *Context) []Finding {
	p, err := c.Sys.self()
	var st procfs.ProcStatus
	if err == nil {
		st, err = p.NewStatus()
	}
	if err != nil {
		return []Finding{fail("run it where /proc is mounted", "cannot read this process's capabilities (/proc/self/status): %v", err)}
	}
	c.Caps, c.HasCap = st.CapEff, true
	var missing []string
	if !c.has(capNetAdmin) {
		missing = append(missing, "CAP_NET_ADMIN (attach XDP, ethtool)")
	}
	if !c.has(capNetRaw) {
		missing = append(missing, "CAP_NET_RAW (AF_XDP sockets)")
	}
	// CAP_BPF and CAP_PERFMON exist from 5.8; before, loading BPF takes
	// CAP_SYS_ADMIN. Without CAP_PERFMON (or CAP_SYS_ADMIN) the verifier
	// refuses the steering program's pointer arithmetic ("prohibited for
	// !root"), seen on 6.18.
	newKernel := c.Kernel == (Version{}) || !c.Kernel.Less(5, 8)
	switch {
	case c.has(capSysAdmin):
	case !newKernel:
		missing = append(missing, "CAP_SYS_ADMIN (load BPF: no CAP_BPF before 5.8)")
	default:
		if !c.has(capBPF) {
			missing = append(missing, "CAP_BPF or CAP_SYS_ADMIN (load BPF)")
		}
		if !c.has(capPerfmon) {
			missing = append(missing, "CAP_PERFMON or CAP_SYS_ADMIN (the verifier refuses the program's pointer arithmetic without it)")
		}
	}
	euid := c.Sys.Euid()
	if len(missing) > 0 {
		return []Finding{fail("run serve as root (sudo), or as the systemd unit in deploy/ (CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_PERFMON), or "+fixUDP,
			"uid %d, CapEff %016x: missing %s", euid, c.Caps, strings.Join(missing, ", "))}
	}
	out := []Finding{pass("uid %d, CapEff %016x: CAP_NET_ADMIN, CAP_NET_RAW, %s%s", euid, c.Caps,
		map[bool]string{true: "CAP_BPF, CAP_PERFMON", false: "CAP_SYS_ADMIN"}[c.has(capBPF) && c.has(capPerfmon)],
		map[bool]string{true: ", CAP_IPC_LOCK", false: ""}[c.has(capIPCLock)])}
	return out
}

func checkAFXDP(c *Context) []Finding {
	err := c.Sys.XSKSocket()
	switch {
	case err == nil:
		return []Finding{pass("an AF_XDP socket opens")}
	case errors.Is(err, unix.EAFNOSUPPORT):
		return []Finding{fail("a kernel built with CONFIG_XDP_SOCKETS=y, or "+fixUDP, "no AF_XDP in this kernel: %v", err)}
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return []Finding{warn("run doctor with the capabilities serve will have (sudo)", "cannot try an AF_XDP socket: %v (needs CAP_NET_RAW)", err)}
	}
	return []Finding{warn("dmesg | tail   # the kernel may say why", "cannot open an AF_XDP socket: %v", err)}
}

func checkInterface(c *Context) []Finding {
	name := c.Opts.Iface
	if name == "" {
		return []Finding{pass("no --iface: interface checks skipped (rebound doctor --iface NAME checks the one serve will use)")}
	}
	l, err := c.Sys.Link(name)
	if errors.Is(err, ErrNoLink) {
		return []Finding{fail("ip -br link   # lists the interfaces; pass one of them as --iface", "interface %s not found (in this network namespace)", name)}
	}
	if err != nil {
		return []Finding{fail("ip -br link", "interface %s: %v", name, err)}
	}
	if l.Loopback {
		return []Finding{fail("rebound serve --mode udp", "%s is a loopback interface: XDP runs there in generic mode only and gains nothing; use --mode udp", name)}
	}
	c.Link = l
	if !l.Up {
		return []Finding{warn("ip link set dev "+name+" up", "%s (index %d, %s) is down: serve attaches, but nothing arrives", name, l.Index, l.Type)}
	}
	return []Finding{pass("%s: index %d, %s, up (operational state %s)", name, l.Index, l.Type, l.Oper)}
}

// Drivers with native (driver-mode) XDP in mainline Linux, by ethtool's
// driver name, with the condition it depends on, if any. Not exhaustive:
// --probe tries an attach instead.
var nativeDrivers = map[string]string{
	"bnxt_en": "", "bonding": "when every slave has it", "cpsw": "", "dpaa2-eth": "", "dpaa_eth": "",
	"ena": "", "enetc": "", "fec": "", "gve": "", "hv_netvsc": "", "i40e": "", "ice": "", "idpf": "",
	"igb": "", "igc": "", "ixgbe": "", "ixgbevf": "", "lan966x-switch": "", "mlx4_en": "", "mlx5_core": "",
	"mvneta": "", "mvpp2": "", "netsec": "", "nfp": "", "nicvf": "", "octeontx2-nicpf": "", "qede": "",
	"sfc": "", "stmmac": "", "tun": "", "veth": "", "vmxnet3": "", "xen-netfront": "",
	"virtio_net": "when the host lets the guest turn its receive offloads off (ethtool -k: rx-gro-hw not [fixed])",
}

// Drivers with AF_XDP zero-copy in mainline Linux.
var zeroCopyDrivers = []string{
	"i40e", "ice", "idpf", "igb", "igc", "ixgbe", "mlx5_core", "stmmac", "gve", "octeontx2-nicpf",
	"fec", "dpaa2-eth",
}

func (c *Context) driver() (string, error) {
	return c.Sys.Driver(c.Link.Name)
}

func checkDriver(c *Context) []Finding {
	name := c.Link.Name
	drv, err := c.driver()
	if err != nil {
		return []Finding{warn("ethtool -i "+name, "cannot read the driver of %s: %v; native XDP unknown (serve tries native, then generic)", name, err)}
	}
	caveat, known := nativeDrivers[drv]
	if c.Opts.Probe {
		if c.Link.XDP != nil {
			return []Finding{pass("driver %s; probe skipped: a program is already attached (see xdp-attached)", drv)}
		}
		err := c.Sys.ProbeNative(c.Link.Index)
		switch {
		case err == nil:
			return []Finding{pass("driver %s: native XDP attach works (probed with an XDP_PASS program, detached)", drv)}
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL):
			return []Finding{warn("none for this driver: a NIC with native XDP (see 'rebound doctor -h'), or accept generic mode (serve --xdp-mode generic)",
				"driver %s: native XDP attach refused (%v): serve runs XDP in generic mode, after the kernel's skb allocation (slower)", drv, err)}
		}
		return []Finding{warn("rebound doctor --iface "+name+" --probe, as root", "driver %s: native XDP probe failed: %v", drv, err)}
	}
	if known && caveat != "" {
		return []Finding{warn("rebound doctor --iface "+name+" --probe   # tries a native attach",
			"driver %s: native XDP only %s; otherwise serve falls back to generic mode (slower)", drv, caveat)}
	}
	if known {
		return []Finding{pass("driver %s: native XDP (known driver; --probe tries it)", drv)}
	}
	return []Finding{warn("rebound doctor --iface "+name+" --probe   # tries a native attach",
		"driver %s: not known to have native XDP: serve would fall back to generic mode (slower)", drv)}
}

func checkZeroCopy(c *Context) []Finding {
	drv, err := c.driver()
	if err != nil {
		return []Finding{warn("ethtool -i "+c.Link.Name, "driver unknown: zero-copy unknown (serve --bind auto uses it where it can)")}
	}
	if slices.Contains(zeroCopyDrivers, drv) {
		return []Finding{pass("driver %s has AF_XDP zero-copy (serve --bind auto uses it; needs native XDP)", drv)}
	}
	return []Finding{warn("none in software: copy mode works; zero-copy needs a NIC whose driver has it (ice, i40e, ixgbe, igc, mlx5_core...)",
		"driver %s has no AF_XDP zero-copy: copy mode, one copy of each frame in and out", drv)}
}

func checkQueues(c *Context) []Finding {
	name, rx, cpus := c.Link.Name, c.Link.RxQueues, c.Sys.NumCPU()
	if q := c.Opts.Queues; q > 0 {
		if q > rx {
			return []Finding{fail(fmt.Sprintf("rebound serve --queues %d, or ethtool -L %s combined %d", rx, name, q),
				"--queues %d but %s has %d rx queues", q, name, rx)}
		}
		if q < rx {
			return []Finding{warn(fmt.Sprintf("rebound serve --queues %d (or 0: all), or ethtool -L %s combined %d", rx, name, q),
				"--queues %d of %d rx queues: traffic hashed to the other %d goes to the kernel, unserved by XDP (answered by the udp sockets)", q, rx, rx-q)}
		}
	}
	switch {
	case rx < cpus:
		return []Finding{warn(fmt.Sprintf("ethtool -L %s combined %d   # where the driver allows (ethtool -l %s shows the maximum)", name, cpus, name),
			"%s has %d rx queue(s) for %d CPUs: serve runs one worker per queue, so at most %d CPU(s) serve", name, rx, cpus, rx)}
	case rx > cpus:
		return []Finding{pass("%s has %d rx queues for %d CPUs: one worker per queue, some CPUs run several", name, rx, cpus)}
	}
	return []Finding{pass("%s has %d rx queue(s) for %d CPU(s): one worker per CPU", name, rx, cpus)}
}

// MemlockNeed is the memory serve locks for UMEMs: frames x 4 KiB per
// queue. The rings are mapped from kernel memory and not charged.
func MemlockNeed(queues, frames int) uint64 {
	return uint64(queues) * uint64(frames) * FrameSize
}

func mib(n uint64) string {
	if n == ^uint64(0) {
		return "unlimited"
	}
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func checkMemlock(c *Context) []Finding {
	frames := c.Opts.Frames
	if frames <= 0 {
		frames = DefaultFrames
	}
	queues, per := c.Opts.Queues, ""
	if queues <= 0 && c.Link != nil {
		queues = max(c.Link.RxQueues, 1)
	}
	if queues <= 0 {
		queues, per = 1, " per queue"
	}
	need := MemlockNeed(queues, frames)
	var cg string
	switch {
	case c.Kernel == (Version{}):
	case c.Kernel.Less(5, 11):
		need += 1 << 20 // the program and its maps, charged here before 5.11
		cg = "; before 5.11 BPF maps count against this limit too (1 MiB added)"
	default:
		cg = "; since 5.11 BPF maps are charged to the memory cgroup instead"
	}
	what := fmt.Sprintf("serve locks %s%s (%d queue(s) x %d frames x 4 KiB)", mib(need), per, queues, frames)
	if per != "" {
		what = fmt.Sprintf("serve locks %s per queue (%d frames x 4 KiB; without --iface one queue is counted)", mib(need), frames)
	}
	if c.has(capIPCLock) {
		return []Finding{pass("%s, not charged: the process has CAP_IPC_LOCK%s", what, cg)}
	}
	p, err := c.Sys.self()
	var lim procfs.ProcLimits
	if err == nil {
		lim, err = p.Limits()
	}
	if err != nil {
		return []Finding{warn("ulimit -l", "%s; cannot read the locked-memory limit (/proc/self/limits): %v", what, err)}
	}
	have := lim.LockedMemory
	if have >= need {
		return []Finding{pass("RLIMIT_MEMLOCK %s >= %s%s", mib(have), what, cg)}
	}
	fix := fmt.Sprintf("ulimit -l unlimited (LimitMEMLOCK=infinity in a systemd unit), or rebound serve --frames %d", max(int(have/FrameSize/uint64(queues)), 2))
	return []Finding{fail(fix, "RLIMIT_MEMLOCK %s < %s: registering the UMEM fails (ENOBUFS), xdp mode fails%s; the limit counts every process of the user", mib(have), what, cg)}
}

// Largest MTU whose frames (with an Ethernet header and one VLAN tag) fit
// a 4096-byte UMEM frame after the kernel's headroom, and the largest most
// drivers accept for native XDP without multi-buffer (a page, less
// headroom and skb_shared_info).
const (
	maxMTUFrame  = FrameSize - PacketHeadroom - 14 - 4
	maxMTUNative = 3498
)

func checkMTU(c *Context) []Finding {
	name, mtu := c.Link.Name, c.Link.MTU
	fix := "ip link set dev " + name + " mtu 1500"
	switch {
	case mtu > maxMTUFrame:
		return []Finding{fail(fix, "MTU %d: a full-size frame does not fit a 4096-byte UMEM frame (%d bytes after the kernel's headroom): native attach fails and larger packets are dropped", mtu, FrameSize-PacketHeadroom)}
	case mtu > maxMTUNative:
		return []Finding{warn(fix, "MTU %d: most drivers refuse native XDP above about %d without multi-buffer: serve would fall back to generic mode", mtu, maxMTUNative)}
	}
	return []Finding{pass("MTU %d: frames fit 4096-byte UMEM frames, native XDP accepts it", mtu)}
}

func checkAttached(c *Context) []Finding {
	x := c.Link.XDP
	if x == nil {
		return []Finding{pass("no XDP program on %s", c.Link.Name)}
	}
	name := c.Sys.ProgramName(x.ID)
	if name == "" {
		name = "?"
	}
	return []Finding{fail(fmt.Sprintf("stop the server or tool that attached it; if attached with ip link: ip link set dev %s xdp off (or serve --xdp-replace)", c.Link.Name),
		"program %q (id %d, %s mode) already attached to %s: serve refuses to replace it", name, x.ID, x.Mode, c.Link.Name)}
}

func checkRxVLAN(c *Context) []Finding {
	name := c.Link.Name
	on, err := c.Sys.RxVLANOffload(name)
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return []Finding{pass("rx-vlan-offload not supported by the driver: VLAN tags stay in the frames")}
	case err != nil:
		return []Finding{warn("ethtool -k "+name+" | grep rx-vlan-offload", "cannot read rx-vlan-offload: %v (serve turns it off if it can)", err)}
	case on:
		return []Finding{warn("ethtool -K "+name+" rxvlan off",
			"rx-vlan-offload on: the NIC strips 802.1Q tags where AF_XDP cannot see them; serve turns it off while it runs (and back on at exit), a short reconfiguration on some NICs")}
	}
	return []Finding{pass("rx-vlan-offload off: VLAN tags stay in the frames")}
}

func checkBusyPoll(c *Context) []Finding {
	name := c.Link.Name
	dir := "/sys/class/net/" + name
	idx, err := c.Sys.read(dir + "/ifindex")
	if err != nil || idx != strconv.Itoa(c.Link.Index) {
		return []Finding{pass("%s not readable here (sysfs is from another network namespace): not checked", dir)}
	}
	var vals []string
	for _, k := range []string{"napi_defer_hard_irqs", "gro_flush_timeout", "threaded"} {
		v, err := c.Sys.read(filepath.Join(dir, k))
		if err != nil {
			v = "?"
		}
		vals = append(vals, k+"="+v)
	}
	for _, k := range []string{"busy_poll", "busy_read"} {
		if v, err := c.Sys.read("/proc/sys/net/core/" + k); err == nil {
			vals = append(vals, "net.core."+k+"="+v)
		}
	}
	return []Finding{pass("%s (informational: serve polls its rings itself for 500 us after the last packet)", strings.Join(vals, " "))}
}
