package doctor

import (
	"strings"
	"testing"
)

func (f *fake) napi(pid, comm, cpus string) {
	f.write("/proc/"+pid+"/comm", comm+"\n")
	f.write("/proc/"+pid+"/status", "Name:\t"+comm+"\nCpus_allowed_list:\t"+cpus+"\n")
}

func TestQueueCPUs(t *testing.T) {
	t.Run("threaded NAPI", func(t *testing.T) {
		f := newFake(t)
		f.link.RxQueues = 2
		f.napi("200", "napi/eth0-8194", "0-3") // queue 1: the higher id
		f.napi("100", "napi/eth0-8193", "2")
		f.napi("300", "napi/eth0-1-8195", "0") // another interface's
		got := checkQueueCPUs(f.ctx(Options{Iface: "eth0", CPUs: []int{2, 3}}))
		expect(t, got, Pass, "queue 0: NAPI thread napi/eth0-8193 (pid 100) on CPUs 2; worker on CPU 2 (--cpus): aligned",
			"queue 1: NAPI thread napi/eth0-8194 (pid 200) on CPUs 0-3", "taskset -pc 3 200")
		if got[1].Status != Warn || len(got) != 3 || strings.Contains(got[2].Fix, "pid 300") {
			t.Fatalf("misaligned queue 1 with --cpus: want WARN and the commands: %+v", got)
		}
		// Without --cpus: where each queue runs, and the commands,
		// serve --cpus included, but no warning.
		got = checkQueueCPUs(f.ctx(Options{Iface: "eth0"}))
		expect(t, got, Pass, "worker not pinned", "taskset -pc 0 100", "taskset -pc 1 200", "rebound serve --iface eth0 --queues 2 --cpus 0-1")
		for _, fi := range got {
			if fi.Status != Pass {
				t.Fatalf("unpinned: %+v", fi)
			}
		}
	})
	t.Run("interrupts", func(t *testing.T) {
		f := newFake(t)
		f.link.RxQueues = 2
		f.write("/proc/interrupts", `           CPU0       CPU1       CPU2       CPU3
 40:          0          0          0          0  PCI-MSIX   0-edge      eth0-TxRx-0
 41:          0          0          0          0  PCI-MSIX   1-edge      eth0-TxRx-1
 42:          0          0          0          0  PCI-MSIX   2-edge      eth0-tx-2
 43:          0          0          0          0  PCI-MSIX   3-edge      eth1-TxRx-0
 50:          0          0          0          0  PCI-MSIX   0-edge      virtio0-input.1
 51:          0          0          0          0  PCI-MSIX   0-edge      virtio0-config
NMI:          0          0          0          0   Non-maskable interrupts
`)
		for irq, cpus := range map[string]string{"40": "1", "41": "1", "42": "0", "43": "0", "50": "3", "51": "0"} {
			f.write("/proc/irq/"+irq+"/smp_affinity_list", cpus+"\n")
		}
		f.write("/sys/class/net/eth0/device/msi_irqs/50", "msix\n")
		f.write("/sys/class/net/eth0/device/msi_irqs/51", "msix\n")
		f.write("/sys/class/net/eth0/threaded", "0\n")
		got := checkQueueCPUs(f.ctx(Options{Iface: "eth0", CPUs: []int{1, 3}}))
		expect(t, got, Pass, "queue 0: IRQ 40 (eth0-TxRx-0) on CPUs 1", "queue 1: IRQ 41 (eth0-TxRx-1) on CPUs 1, IRQ 50 (virtio0-input.1) on CPUs 3",
			"echo 3 > /proc/irq/41/smp_affinity_list")
		all := ""
		for _, fi := range got {
			all += fi.Detail + fi.Fix
		}
		for _, not := range []string{"IRQ 42", "IRQ 43", "IRQ 51", "/proc/irq/50/"} {
			if strings.Contains(all, not) {
				t.Errorf("%s in %q", not, all)
			}
		}
	})
	t.Run("neither", func(t *testing.T) {
		f := newFake(t)
		f.link.RxQueues = 1
		f.write("/sys/class/net/eth0/threaded", "0\n")
		expect(t, checkQueueCPUs(f.ctx(Options{Iface: "eth0"})), Pass, "softirq", "echo 1 > /sys/class/net/eth0/threaded")
	})
	t.Run("short list", func(t *testing.T) {
		f := newFake(t)
		f.link.RxQueues = 4
		expect(t, checkQueueCPUs(f.ctx(Options{Iface: "eth0", CPUs: []int{0, 1}})), Fail, "names 2 CPU(s) for 4 queues")
	})
}
