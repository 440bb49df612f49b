package doctor

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Capability sets as /proc/self/status shows them.
const (
	capsRoot = 0x000001fffeffffff
	capsXDP  = 1<<capNetAdmin | 1<<capNetRaw | 1<<capBPF | 1<<capPerfmon // what the unit in deploy/ grants
	capsNone = 0
)

// fake is a machine made of files in a temporary directory and hooks.
type fake struct {
	t    *testing.T
	sys  *System
	link *Link
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, link: &Link{Name: "eth0", Index: 3, Type: "device", Up: true, Oper: "up", MTU: 1500, RxQueues: 4}}
	f.sys = &System{
		Root:   t.TempDir(),
		Euid:   func() int { return 0 },
		NumCPU: func() int { return 4 },
		Link: func(name string) (*Link, error) {
			if f.link == nil || name != f.link.Name {
				return nil, fmt.Errorf("link %s: %w", name, ErrNoLink)
			}
			return f.link, nil
		},
		Driver:        func(string) (string, error) { return "ice", nil },
		RxVLANOffload: func(string) (bool, error) { return false, nil },
		ProgramName:   func(uint32) string { return "xdp_prog" },
		XSKSocket:     func() error { return nil },
		ProbeNative:   func(int) error { return nil },
	}
	if err := os.MkdirAll(filepath.Join(f.sys.Root, "proc", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("1", filepath.Join(f.sys.Root, "proc", "self")); err != nil {
		t.Fatal(err)
	}
	f.write("/proc/sys/kernel/osrelease", "6.18.44-fc-v782\n")
	f.write("/proc/sys/net/core/bpf_jit_enable", "1\n")
	f.caps(capsRoot)
	f.memlock("unlimited")
	f.config("/proc/config.gz", "CONFIG_BPF_SYSCALL=y\nCONFIG_XDP_SOCKETS=y\nCONFIG_BPF_JIT=y\nCONFIG_BPF_JIT_ALWAYS_ON=y\n")
	for k, v := range map[string]string{"ifindex": "3", "napi_defer_hard_irqs": "2", "gro_flush_timeout": "200000", "threaded": "1"} {
		f.write("/sys/class/net/eth0/"+k, v+"\n")
	}
	return f
}

func (f *fake) write(p, content string) {
	f.t.Helper()
	full := filepath.Join(f.sys.Root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fake) remove(p string) {
	f.t.Helper()
	if err := os.Remove(filepath.Join(f.sys.Root, p)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fake) caps(eff uint64) {
	f.write("/proc/1/status", fmt.Sprintf("Name:\trebound\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t%016x\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t0000000000000000\n", eff, eff, uint64(capsRoot)))
}

// memlock writes /proc/self/limits with the given soft and hard locked
// memory limit ("unlimited" or bytes).
func (f *fake) memlock(v string) {
	f.write("/proc/1/limits", "Limit                     Soft Limit           Hard Limit           Units     \n"+
		"Max open files            1024                 524288               files     \n"+
		fmt.Sprintf("Max locked memory         %-20s %-20s bytes     \n", v, v))
}

// config writes a kernel config at p, gzipped when p ends in .gz.
func (f *fake) config(p, content string) {
	if strings.HasSuffix(p, ".gz") {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(content))
		zw.Close()
		content = b.String()
	}
	f.write(p, content)
}

// ctx makes the context a check runs in, after the checks it depends on.
func (f *fake) ctx(opts Options) *Context {
	c := &Context{Opts: opts, Sys: f.sys}
	checkKernel(c)
	checkConfig(c)
	checkCaps(c)
	if opts.Iface != "" {
		if l, err := f.sys.Link(opts.Iface); err == nil && !l.Loopback {
			c.Link = l
		}
	}
	return c
}

// expect checks that the findings are want, each one's detail and fix
// holding the given substrings.
func expect(t *testing.T, got []Finding, want Status, substr ...string) {
	t.Helper()
	if len(got) == 0 {
		t.Fatal("no finding")
	}
	if got[0].Status != want {
		t.Errorf("status %v, want %v: %+v", got[0].Status, want, got)
	}
	all := ""
	for _, f := range got {
		all += f.Detail + " | " + f.Fix + " | "
		if f.Status != Pass && f.Fix == "" {
			t.Errorf("%v without a fix: %+v", f.Status, f)
		}
	}
	for _, s := range substr {
		if !strings.Contains(all, s) {
			t.Errorf("want %q in %q", s, all)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"6.18.44-fc-v782": {6, 18}, "5.15.0-91-generic": {5, 15}, "4.18.0-553.el8_10.x86_64": {4, 18}, "6.1": {6, 1}} {
		if v, err := ParseVersion(in); err != nil || v != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, v, err, want)
		}
	}
	for _, in := range []string{"", "6", "linux-6.1", "0.1"} {
		if v, err := ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", in, v)
		}
	}
}

func TestKernel(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    Status
		substr  []string
	}{
		{"6.18.44-fc-v782", Pass, []string{"bpf_link for XDP (5.9)"}},
		{"5.10.0-28-amd64", Pass, []string{"before 6.16"}},
		{"5.4.0-150-generic", Fail, []string{"no bpf_link for XDP (5.9)", "--mode udp"}},
		{"4.19.0-26-amd64", Fail, []string{"no need_wakeup (5.4: idle workers would spin"}},
		{"4.14.336", Fail, []string{"no AF_XDP sockets (4.18)"}},
		{"weird", Warn, []string{"major.minor"}},
		{"", Warn, []string{"cannot read"}},
	} {
		t.Run(tc.release, func(t *testing.T) {
			f := newFake(t)
			if tc.release == "" {
				f.remove("/proc/sys/kernel/osrelease")
			} else {
				f.write("/proc/sys/kernel/osrelease", tc.release+"\n")
			}
			expect(t, checkKernel(&Context{Sys: f.sys}), tc.want, tc.substr...)
		})
	}
}

func TestKernelConfig(t *testing.T) {
	for _, tc := range []struct {
		name, path, content string
		want                Status
		substr              []string
	}{
		{"proc gz", "/proc/config.gz", "CONFIG_BPF_SYSCALL=y\nCONFIG_XDP_SOCKETS=y\nCONFIG_BPF_JIT=y\n", Pass, []string{"/proc/config.gz", "CONFIG_XDP_SOCKETS=y"}},
		{"boot no xsk", "/boot/config-6.18.44-fc-v782", "CONFIG_BPF_SYSCALL=y\n# CONFIG_XDP_SOCKETS is not set\nCONFIG_BPF_JIT=y\n", Fail, []string{"/boot/config-6.18.44-fc-v782", "CONFIG_XDP_SOCKETS not set"}},
		{"no jit", "/proc/config.gz", "CONFIG_BPF_SYSCALL=y\nCONFIG_XDP_SOCKETS=y\n", Warn, []string{"interpreter"}},
		{"unreadable", "", "", Pass, []string{"not readable", "af-xdp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.remove("/proc/config.gz")
			if tc.path != "" {
				f.config(tc.path, tc.content)
			}
			expect(t, checkConfig(&Context{Sys: f.sys}), tc.want, tc.substr...)
		})
	}
}

func TestJIT(t *testing.T) {
	for _, tc := range []struct {
		name, value string // value "": the sysctl is absent
		config      map[string]string
		want        Status
		substr      []string
	}{
		{"on", "1", nil, Pass, []string{"JIT on"}},
		{"debug", "2", nil, Pass, []string{"debug"}},
		{"off", "0", nil, Warn, []string{"interpreted", "bpf_jit_enable=1"}},
		{"other netns, always on", "", map[string]string{"CONFIG_BPF_JIT_ALWAYS_ON": "y"}, Pass, []string{"always on"}},
		{"no jit built", "", map[string]string{"CONFIG_BPF_SYSCALL": "y"}, Warn, []string{"no BPF JIT"}},
		{"unknown", "", nil, Pass, []string{"not checked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			if tc.value == "" {
				f.remove("/proc/sys/net/core/bpf_jit_enable")
			} else {
				f.write("/proc/sys/net/core/bpf_jit_enable", tc.value+"\n")
			}
			expect(t, checkJIT(&Context{Sys: f.sys, Config: tc.config}), tc.want, tc.substr...)
		})
	}
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name    string
		caps    uint64
		euid    int
		release string
		want    Status
		substr  []string
	}{
		{"root", capsRoot, 0, "6.18.0", Pass, []string{"CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_PERFMON, CAP_IPC_LOCK"}},
		{"root with the unit's set", capsXDP, 0, "6.18.0", Pass, []string{"CAP_BPF, CAP_PERFMON"}},
		{"no CAP_PERFMON", capsXDP &^ (1 << capPerfmon), 0, "6.18.0", Fail, []string{"CAP_PERFMON or CAP_SYS_ADMIN (the verifier"}},
		{"nobody", capsNone, 65534, "6.18.0", Fail, []string{"uid 65534", "missing CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF or CAP_SYS_ADMIN", "CAP_PERFMON"}},
		{"no CAP_BPF before 5.8", capsXDP, 0, "5.4.0", Fail, []string{"CAP_SYS_ADMIN (load BPF: no CAP_BPF before 5.8)"}},
		{"sys_admin instead of bpf", 1<<capNetAdmin | 1<<capNetRaw | 1<<capSysAdmin, 0, "6.1.0", Pass, []string{"CAP_SYS_ADMIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.caps(tc.caps)
			f.write("/proc/sys/kernel/osrelease", tc.release)
			f.sys.Euid = func() int { return tc.euid }
			c := &Context{Sys: f.sys}
			checkKernel(c)
			got := checkCaps(c)
			expect(t, got, tc.want, tc.substr...)
			if len(got) != 1 {
				t.Errorf("%d findings, want 1: %+v", len(got), got)
			}
		})
	}
	t.Run("capabilities without root", func(t *testing.T) {
		f := newFake(t)
		f.caps(capsXDP)
		f.sys.Euid = func() int { return 990 }
		got := checkCaps(&Context{Sys: f.sys})
		// serve checks capabilities, not the uid: a service user with
		// them is ready.
		if len(got) != 1 || got[0].Status != Pass {
			t.Fatalf("want one PASS, got %+v", got)
		}
	})
	t.Run("no proc", func(t *testing.T) {
		f := newFake(t)
		f.remove("/proc/1/status")
		expect(t, checkCaps(&Context{Sys: f.sys}), Fail, "cannot read")
	})
}

func TestAFXDP(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Status
	}{{nil, Pass}, {unix.EAFNOSUPPORT, Fail}, {unix.EPERM, Warn}, {unix.ENOMEM, Warn}} {
		f := newFake(t)
		f.sys.XSKSocket = func() error { return tc.err }
		expect(t, checkAFXDP(&Context{Sys: f.sys}), tc.want)
	}
}

func TestInterface(t *testing.T) {
	for _, tc := range []struct {
		name, iface string
		link        *Link
		want        Status
		substr      []string
		found       bool // Context.Link set: the interface checks run
	}{
		{"no iface", "", nil, Pass, []string{"no --iface"}, false},
		{"up", "eth0", &Link{Name: "eth0", Index: 3, Type: "device", Up: true, Oper: "up"}, Pass, []string{"eth0: index 3, device, up"}, true},
		{"down", "eth0", &Link{Name: "eth0", Index: 3, Type: "device", Oper: "down"}, Warn, []string{"is down", "ip link set dev eth0 up"}, true},
		{"missing", "eth9", &Link{Name: "eth0"}, Fail, []string{"eth9 not found", "ip -br link"}, false},
		{"loopback", "lo", &Link{Name: "lo", Index: 1, Type: "device", Up: true, Loopback: true}, Fail, []string{"loopback", "--mode udp"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.link = tc.link
			c := &Context{Opts: Options{Iface: tc.iface}, Sys: f.sys}
			expect(t, checkInterface(c), tc.want, tc.substr...)
			if (c.Link != nil) != tc.found {
				t.Errorf("Context.Link = %v, want found %v", c.Link, tc.found)
			}
		})
	}
	t.Run("netlink error", func(t *testing.T) {
		f := newFake(t)
		f.sys.Link = func(string) (*Link, error) { return nil, unix.EPERM }
		expect(t, checkInterface(&Context{Opts: Options{Iface: "eth0"}, Sys: f.sys}), Fail, "operation not permitted")
	})
}

func TestDriver(t *testing.T) {
	for _, tc := range []struct {
		name, driver string
		drvErr       error
		probe        bool
		probeErr     error
		attached     bool
		want         Status
		substr       []string
	}{
		{"known", "veth", nil, false, nil, false, Pass, []string{"driver veth: native XDP"}},
		{"known with a condition", "virtio_net", nil, false, nil, false, Warn, []string{"rx-gro-hw", "--probe"}},
		{"unknown", "r8169", nil, false, nil, false, Warn, []string{"not known", "--probe"}},
		{"unreadable", "", unix.EOPNOTSUPP, false, nil, false, Warn, []string{"ethtool -i eth0"}},
		{"probe works", "r8169", nil, true, nil, false, Pass, []string{"attach works"}},
		{"probe refused", "virtio_net", nil, true, unix.EOPNOTSUPP, false, Warn, []string{"refused", "generic"}},
		{"probe error", "ice", nil, true, unix.EPERM, false, Warn, []string{"probe failed"}},
		{"probe with a program there", "ice", nil, true, unix.EBUSY, true, Pass, []string{"probe skipped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.sys.Driver = func(string) (string, error) { return tc.driver, tc.drvErr }
			probed := false
			f.sys.ProbeNative = func(ifindex int) error {
				probed = true
				if ifindex != 3 {
					t.Errorf("probe on ifindex %d, want 3", ifindex)
				}
				return tc.probeErr
			}
			if tc.attached {
				f.link.XDP = &AttachedXDP{ID: 7, Mode: "native"}
			}
			c := f.ctx(Options{Iface: "eth0", Probe: tc.probe})
			expect(t, checkDriver(c), tc.want, tc.substr...)
			if want := tc.probe && !tc.attached && tc.drvErr == nil; probed != want {
				t.Errorf("probed %v, want %v", probed, want)
			}
		})
	}
}

func TestZeroCopy(t *testing.T) {
	for drv, want := range map[string]Status{"ice": Pass, "mlx5_core": Pass, "veth": Warn, "virtio_net": Warn} {
		f := newFake(t)
		f.sys.Driver = func(string) (string, error) { return drv, nil }
		expect(t, checkZeroCopy(f.ctx(Options{Iface: "eth0"})), want, drv)
	}
}

func TestQueues(t *testing.T) {
	for _, tc := range []struct {
		name         string
		rx, cpus, qs int
		want         Status
		substr       []string
	}{
		{"one per cpu", 4, 4, 0, Pass, []string{"4 rx queue(s) for 4 CPU(s)"}},
		{"more queues", 8, 4, 0, Pass, []string{"several"}},
		{"too few", 1, 4, 0, Warn, []string{"at most 1 CPU(s)", "ethtool -L eth0 combined 4"}},
		{"one short", 3, 4, 0, Warn, []string{"at most 3 CPU(s)"}},
		{"--queues above", 4, 4, 8, Fail, []string{"--queues 8 but eth0 has 4", "--queues 4"}},
		{"--queues below", 4, 4, 2, Warn, []string{"the other 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.link.RxQueues = tc.rx
			f.sys.NumCPU = func() int { return tc.cpus }
			expect(t, checkQueues(f.ctx(Options{Iface: "eth0", Queues: tc.qs})), tc.want, tc.substr...)
		})
	}
}

func TestMemlock(t *testing.T) {
	for _, tc := range []struct {
		name, limit, release string
		caps                 uint64
		iface                string
		queues, frames       int
		want                 Status
		substr               []string
	}{
		{"unlimited", "unlimited", "6.18.0", capsXDP, "eth0", 0, 0, Pass, []string{"unlimited", "64 MiB (4 queue(s) x 4096 frames", "memory cgroup"}},
		{"ipc_lock", "65536", "6.18.0", capsRoot, "eth0", 0, 0, Pass, []string{"CAP_IPC_LOCK"}},
		{"too small", "8388608", "6.18.0", capsXDP, "eth0", 0, 0, Fail, []string{"8 MiB < serve locks 64 MiB", "LimitMEMLOCK=infinity", "--frames 512"}},
		{"fits", "67108864", "6.18.0", capsXDP, "eth0", 0, 0, Pass, []string{"64 MiB >="}},
		{"fewer frames fit", "8388608", "6.18.0", capsXDP, "eth0", 2, 1024, Pass, []string{"8 MiB (2 queue(s) x 1024 frames"}},
		{"no iface", "16777216", "6.18.0", capsXDP, "", 0, 0, Pass, []string{"16 MiB per queue"}},
		{"maps count before 5.11", "16777216", "5.10.0", capsRoot &^ (1 << capIPCLock), "", 0, 0, Fail, []string{"17 MiB", "before 5.11"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.memlock(tc.limit)
			f.caps(tc.caps)
			f.write("/proc/sys/kernel/osrelease", tc.release)
			expect(t, checkMemlock(f.ctx(Options{Iface: tc.iface, Queues: tc.queues, Frames: tc.frames})), tc.want, tc.substr...)
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		f := newFake(t)
		f.caps(capsXDP)
		f.remove("/proc/1/limits")
		expect(t, checkMemlock(f.ctx(Options{})), Warn, "cannot read")
	})
}

func TestMTU(t *testing.T) {
	for mtu, want := range map[int]Status{1500: Pass, 3498: Pass, 3600: Warn, 3822: Warn, 3823: Fail, 9000: Fail} {
		f := newFake(t)
		f.link.MTU = mtu
		expect(t, checkMTU(f.ctx(Options{Iface: "eth0"})), want, fmt.Sprintf("MTU %d", mtu))
	}
}

func TestAttached(t *testing.T) {
	f := newFake(t)
	expect(t, checkAttached(f.ctx(Options{Iface: "eth0"})), Pass, "no XDP program")
	f.link.XDP = &AttachedXDP{ID: 42, Mode: "generic"}
	expect(t, checkAttached(f.ctx(Options{Iface: "eth0"})), Fail, `"xdp_prog" (id 42, generic mode)`, "xdp off")
}

func TestRxVLAN(t *testing.T) {
	for _, tc := range []struct {
		on     bool
		err    error
		want   Status
		substr string
	}{{false, nil, Pass, "off"}, {true, nil, Warn, "rxvlan off"}, {false, unix.EOPNOTSUPP, Pass, "not supported"}, {false, unix.ENODEV, Warn, "cannot read"}} {
		f := newFake(t)
		f.sys.RxVLANOffload = func(string) (bool, error) { return tc.on, tc.err }
		expect(t, checkRxVLAN(f.ctx(Options{Iface: "eth0"})), tc.want, tc.substr)
	}
}

func TestBusyPoll(t *testing.T) {
	f := newFake(t)
	f.write("/proc/sys/net/core/busy_poll", "50")
	expect(t, checkBusyPoll(f.ctx(Options{Iface: "eth0"})), Pass, "napi_defer_hard_irqs=2 gro_flush_timeout=200000 threaded=1 net.core.busy_poll=50")
	f.write("/sys/class/net/eth0/ifindex", "9") // a same-named interface of another namespace
	expect(t, checkBusyPoll(f.ctx(Options{Iface: "eth0"})), Pass, "not checked")
}

func TestRun(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		f := newFake(t)
		f.link.RxQueues = 4
		got := Run(Options{Iface: "eth0", Sys: f.sys})
		var names []string
		for _, fi := range got {
			if len(names) == 0 || names[len(names)-1] != fi.Check { // queue-cpus: a finding per queue
				names = append(names, fi.Check)
			}
		}
		want := "kernel kernel-config bpf-jit capabilities af-xdp interface driver zero-copy queues memlock open-files mtu xdp-attached rx-vlan-offload busy-poll queue-cpus"
		if strings.Join(names, " ") != want {
			t.Errorf("checks %v, want %s", names, want)
		}
		if code, verdict := Exit(got); code != 0 || verdict != "ready" {
			t.Errorf("exit %d %s, want 0 ready: %+v", code, verdict, got)
		}
	})
	t.Run("degraded", func(t *testing.T) {
		f := newFake(t)
		f.sys.Driver = func(string) (string, error) { return "veth", nil }
		if code, _ := Exit(Run(Options{Iface: "eth0", Sys: f.sys})); code != 1 {
			t.Errorf("veth (copy mode): exit %d, want 1", code)
		}
	})
	t.Run("loopback skips the interface checks", func(t *testing.T) {
		f := newFake(t)
		f.link = &Link{Name: "lo", Index: 1, Loopback: true, Up: true}
		f.sys.Driver = func(string) (string, error) { t.Error("driver read for loopback"); return "", errors.New("no") }
		got := Run(Options{Iface: "lo", Sys: f.sys})
		if code, verdict := Exit(got); code != 2 || verdict != "not possible" {
			t.Errorf("exit %d %s, want 2", code, verdict)
		}
		for _, fi := range got {
			if fi.Check == "mtu" || fi.Check == "driver" {
				t.Errorf("interface check %s ran on loopback", fi.Check)
			}
		}
	})
}

func TestExitAndJSON(t *testing.T) {
	for _, tc := range []struct {
		st   []Status
		code int
	}{{nil, 0}, {[]Status{Pass, Pass}, 0}, {[]Status{Pass, Warn}, 1}, {[]Status{Fail, Warn, Pass}, 2}} {
		var fs []Finding
		for _, s := range tc.st {
			fs = append(fs, Finding{Check: "x", Status: s})
		}
		if code, _ := Exit(fs); code != tc.code {
			t.Errorf("Exit(%v) = %d, want %d", tc.st, code, tc.code)
		}
	}
	b, err := json.Marshal(Finding{Check: "mtu", Status: Warn, Detail: "d", Fix: "f"})
	if err != nil || string(b) != `{"check":"mtu","status":"WARN","detail":"d","fix":"f"}` {
		t.Errorf("json %s, %v", b, err)
	}
	var back Finding
	if err := json.Unmarshal(b, &back); err != nil || back.Status != Warn {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"status":"MAYBE"}`), &back); err == nil {
		t.Error("status MAYBE accepted")
	}
}

// nofile writes /proc/self/limits with the given soft and hard open-files
// limit and no locked-memory limit.
func (f *fake) nofile(soft, hard string) {
	f.write("/proc/1/limits", "Limit                     Soft Limit           Hard Limit           Units     \n"+
		fmt.Sprintf("Max open files            %-20s %-20s files     \n", soft, hard)+
		"Max locked memory         unlimited            unlimited            bytes     \n")
}

func TestOpenFiles(t *testing.T) {
	// 4 CPUs: 8 UDP sockets, 2 TCP listeners, 128 more; with eth0 4 queues.
	for _, tc := range []struct {
		name, soft, hard string
		caps             uint64
		iface            string
		maxConns         int
		want             Status
		substr           []string
	}{
		{"default limits", "1024", "524288", capsXDP, "", 0, Pass, []string{"RLIMIT_NOFILE 1024, hard 524288 >= serve needs 1162 descriptors", "--max-conns 1024", "raises the soft limit 1024"}},
		{"soft fits", "65536", "65536", capsXDP, "eth0", 0, Pass, []string{"1166 descriptors", "4 AF_XDP"}},
		{"unlimited", "unlimited", "unlimited", capsXDP, "", 0, Pass, []string{"hard 18446744073709551615"}},
		{"hard too low", "1024", "1024", capsXDP, "", 0, Warn, []string{"hard 1024 < serve needs 1162", "about 886 connections", "LimitNOFILE=1162", "--max-conns 886"}},
		{"this class", "20000", "20000", capsXDP, "eth0", 18000, Pass, []string{"18142 descriptors"}},
		{"this class, past it", "20000", "20000", capsXDP, "eth0", 19900, Warn, []string{"20042 descriptors", "about 19858 connections", "--max-conns 19858"}},
		{"CAP_SYS_RESOURCE raises the hard limit", "1024", "1024", capsXDP | 1<<capSysResource, "", 0, Pass, []string{"serve raises it", "nr_open 1048576"}},
		{"beyond nr_open", "1024", "1024", capsXDP | 1<<capSysResource, "", 1100000, Warn, []string{"LimitNOFILE=1100138"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.nofile(tc.soft, tc.hard)
			f.caps(tc.caps)
			f.write("/proc/sys/fs/nr_open", "1048576\n")
			expect(t, checkOpenFiles(f.ctx(Options{Iface: tc.iface, MaxConns: tc.maxConns})), tc.want, tc.substr...)
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		f := newFake(t)
		f.remove("/proc/1/limits")
		expect(t, checkOpenFiles(f.ctx(Options{})), Warn, "cannot read")
	})
}
