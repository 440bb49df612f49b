package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/doctor"
	"github.com/rebound-net/rebound/internal/testutil"
)

// runDoctor runs 'rebound doctor args... --json' and decodes the report.
func runDoctor(t *testing.T, args ...string) (int, doctorReport) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"doctor", "--json"}, args...), &out, &errb)
	var rep doctorReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("doctor %v: exit %d, not JSON (%v): %s\nstderr: %s", args, code, err, out.String(), errb.String())
	}
	if rep.Exit != code {
		t.Errorf("report says exit %d, the command exited %d", rep.Exit, code)
	}
	for _, f := range rep.Findings {
		t.Logf("%-15s %s  %s", f.Check, f.Status, f.Detail)
		if f.Fix != "" {
			t.Logf("%-15s       fix: %s", "", f.Fix)
		}
	}
	return code, rep
}

func finding(rep doctorReport, check string) (doctor.Finding, bool) {
	for _, f := range rep.Findings {
		if f.Check == check {
			return f, true
		}
	}
	return doctor.Finding{}, false
}

func TestDoctorUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"doctor", "-h"}, &out, &errb); code != exitOK {
		t.Errorf("-h: exit %d", code)
	}
	for _, s := range []string{"Exit status: 0 ready, 1 degraded", "--probe", "memlock", "rebound doctor --iface eth0"} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("-h lacks %q:\n%s", s, errb.String())
		}
	}
	for _, args := range [][]string{{"--bogus"}, {"--probe"}, {"--frames", "1"}, {"extra"}} {
		if code := run(append([]string{"doctor"}, args...), &out, &errb); code != exitUsage {
			t.Errorf("doctor %v: exit %d, want %d", args, code, exitUsage)
		}
	}
	out.Reset()
	run([]string{"help"}, &out, &errb)
	if !strings.Contains(out.String(), "rebound doctor") {
		t.Errorf("the overview does not list doctor:\n%s", out.String())
	}
}

// TestDoctorLoopback: XDP on loopback is refused, whoever runs it.
func TestDoctorLoopback(t *testing.T) {
	code, rep := runDoctor(t, "--iface", "lo")
	if code != 2 || rep.Verdict != "not possible" {
		t.Errorf("exit %d (%s), want 2", code, rep.Verdict)
	}
	f, ok := finding(rep, "interface")
	if !ok || f.Status != doctor.Fail || !strings.Contains(f.Fix, "--mode udp") {
		t.Errorf("interface finding %+v, want a FAIL saying --mode udp", f)
	}
	if _, ok := finding(rep, "mtu"); ok {
		t.Error("interface checks ran on loopback")
	}
	// The table says the same.
	var out, errb bytes.Buffer
	run([]string{"doctor", "--iface", "lo"}, &out, &errb)
	if !strings.Contains(out.String(), "FAIL") || !strings.Contains(out.String(), "xdp mode on lo: not possible (exit 2)") {
		t.Errorf("table:\n%s", out.String())
	}
}

// TestDoctorVeth runs the doctor inside the lab's server namespace, on
// its veth end, as serve would be run there.
func TestDoctorVeth(t *testing.T) {
	lab := testutil.NewLab(t, 1)
	var code int
	var rep doctorReport
	lab.Srv.Do(t, func() { code, rep = runDoctor(t, "--iface", lab.SrvIf.Name, "--probe") })
	if code != 0 && code != 1 {
		t.Errorf("exit %d (%s), want 0 or 1", code, rep.Verdict)
	}
	for _, f := range rep.Findings {
		if f.Status == doctor.Fail {
			t.Errorf("FAIL on the lab's veth: %+v", f)
		}
	}
	want := map[string]string{
		"interface": lab.SrvIf.Name + ": index", "driver": "driver veth: native XDP attach works",
		"zero-copy": "veth", "mtu": "MTU 1500", "xdp-attached": "no XDP program",
	}
	for check, s := range want {
		if f, ok := finding(rep, check); !ok || !strings.Contains(f.Detail, s) {
			t.Errorf("%s: %+v, want %q in it", check, f, s)
		}
	}
	// The probe left nothing attached.
	l, err := lab.Srv.Netlink.LinkByName(lab.SrvIf.Name)
	if err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		t.Errorf("the probe left program %d attached", x.ProgId)
	}
}
