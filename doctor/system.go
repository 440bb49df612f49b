package doctor

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/xdp"
)

// System is the machine as the checks see it. Real() fills every field;
// a test sets Root to a directory with fake proc/ and sys/ trees and
// replaces the hooks.
type System struct {
	// Root is prepended to /proc and /sys paths ("" or "/": the real ones).
	Root string
	// Euid is the effective user id of the process.
	Euid func() int
	// NumCPU is the number of CPUs serve can run on.
	NumCPU func() int
	// Link describes an interface (netlink, in the calling thread's
	// network namespace). An error wrapping ErrNoLink means it does not
	// exist.
	Link func(name string) (*Link, error)
	// Driver names the interface's driver (ethtool driver info).
	Driver func(name string) (string, error)
	// RxVLANOffload reports ethtool's rx-vlan-offload.
	RxVLANOffload func(name string) (bool, error)
	// ProgramName names a loaded BPF program by id ("" when unknown).
	ProgramName func(id uint32) string
	// XSKSocket opens and closes an AF_XDP socket.
	XSKSocket func() error
	// ProbeNative attaches an XDP_PASS program to the interface in driver
	// mode through a bpf_link, and detaches it.
	ProbeNative func(ifindex int) error
}

// ErrNoLink is wrapped by System.Link for an interface that does not exist.
var ErrNoLink = errors.New("no such interface")

// Link is what the checks need to know about an interface.
type Link struct {
	Name     string
	Index    int
	Type     string // netlink's link kind: device, veth, loopback...
	Up       bool   // administratively up
	Oper     string // operational state: up, down, unknown...
	Loopback bool
	MTU      int
	RxQueues int
	// XDP is the program attached to it, if any.
	XDP *AttachedXDP
}

// AttachedXDP is an XDP program attached to an interface.
type AttachedXDP struct {
	ID   uint32
	Mode string // native, generic or offload
}

// Real returns the System of this machine and process.
func Real() *System {
	return &System{
		Root:          "/",
		Euid:          os.Geteuid,
		NumCPU:        runtime.NumCPU,
		Link:          realLink,
		Driver:        realDriver,
		RxVLANOffload: realRxVLAN,
		ProgramName:   realProgramName,
		XSKSocket:     realXSK,
		ProbeNative:   realProbe,
	}
}

// path returns p (an absolute /proc or /sys path) under the root.
func (s *System) path(p string) string {
	if s.Root == "" {
		return p
	}
	return filepath.Join(s.Root, p)
}

// read returns the trimmed content of a file under the root.
func (s *System) read(p string) (string, error) {
	b, err := os.ReadFile(s.path(p))
	return strings.TrimSpace(string(b)), err
}

func realLink(name string) (*Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, errors.Join(ErrNoLink, err)
		}
		return nil, err
	}
	a := l.Attrs()
	out := &Link{Name: a.Name, Index: a.Index, Type: l.Type(), Up: a.Flags&net.FlagUp != 0,
		Oper: a.OperState.String(), Loopback: a.Flags&net.FlagLoopback != 0, MTU: a.MTU, RxQueues: a.NumRxQueues}
	if x := a.Xdp; x != nil && x.Attached {
		out.XDP = &AttachedXDP{ID: x.ProgId, Mode: map[uint32]string{1: "native", 2: "generic", 3: "offload"}[x.AttachMode]}
	}
	return out, nil
}

func realDriver(name string) (string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return "", os.NewSyscallError("ethtool driver info", err)
	}
	return unix.ByteSliceToString(info.Driver[:]), nil
}

func realRxVLAN(name string) (bool, error) {
	e, err := xdp.NewEthtool(name)
	if err != nil {
		return false, err
	}
	defer e.Close()
	return e.RxVLANOffload()
}

func realProgramName(id uint32) string {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return ""
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return ""
	}
	return info.Name
}

func realXSK() error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket(AF_XDP)", err)
	}
	return unix.Close(fd)
}

func realProbe(ifindex int) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "doctor_pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		return err
	}
	defer prog.Close()
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		return err
	}
	return l.Close()
}
