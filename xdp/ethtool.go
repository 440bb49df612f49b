package xdp

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ethtool reads and changes the interface settings that matter to AF_XDP,
// through the ethtool ioctl. It keeps its own socket, made in the network
// namespace of the caller at NewEthtool, so later calls work from any
// thread.
type Ethtool struct {
	fd   int
	name string
}

// NewEthtool opens an ethtool handle for the interface name.
func NewEthtool(name string) (*Ethtool, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("ethtool: interface name %q too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ethtool: %w", os.NewSyscallError("socket", err))
	}
	return &Ethtool{fd: fd, name: name}, nil
}

// ifreqData is struct ifreq with ifr_data: the name, then a pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte // the rest of the ifreq union
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ethFlagRxVLAN is ETH_FLAG_RXVLAN: the NIC strips 802.1Q tags on receive
// into packet metadata, which AF_XDP does not see.
const ethFlagRxVLAN = 1 << 8

func (e *Ethtool) call(v *ethtoolValue) error {
	var ifr ifreqData
	copy(ifr.name[:], e.name)
	ifr.data = unsafe.Pointer(v) // unsafe: the kernel reads and writes *v during the call
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(e.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return fmt.Errorf("ethtool %s: %w", e.name, os.NewSyscallError("ioctl", errno))
	}
	return nil
}

// RxVLANOffload reports whether the interface strips VLAN tags on receive
// (ethtool's rx-vlan-offload).
func (e *Ethtool) RxVLANOffload() (bool, error) {
	v := ethtoolValue{cmd: unix.ETHTOOL_GFLAGS}
	if err := e.call(&v); err != nil {
		return false, err
	}
	return v.data&ethFlagRxVLAN != 0, nil
}

// SetRxVLANOffload turns rx-vlan-offload on or off.
func (e *Ethtool) SetRxVLANOffload(on bool) error {
	v := ethtoolValue{cmd: unix.ETHTOOL_GFLAGS}
	if err := e.call(&v); err != nil {
		return err
	}
	if on {
		v.data |= ethFlagRxVLAN
	} else {
		v.data &^= ethFlagRxVLAN
	}
	v.cmd = unix.ETHTOOL_SFLAGS
	return e.call(&v)
}

// Close releases the handle.
func (e *Ethtool) Close() error { return unix.Close(e.fd) }
