package cpuset

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{"0", []int{0}, ""},
		{"0-3", []int{0, 1, 2, 3}, ""},
		{"3,1", []int{3, 1}, ""},
		{" 0-1, 8,10-11 ", []int{0, 1, 8, 10, 11}, ""},
		{"", nil, "empty"},
		{"a", nil, "not a CPU number"},
		{"-1", nil, "not a CPU number"},
		{"3-1", nil, "a <= b"},
		{"1,1", nil, "CPU 1 twice"},
		{"0-2,2", nil, "CPU 2 twice"},
		{"1024", nil, "at most 1023"},
		{"0,", nil, "not a CPU number"},
	} {
		got, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1, 2, 5}, "0-2,5"}, {[]int{3, 1}, "3,1"}, {[]int{1, 2, 4, 5}, "1-2,4-5"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if len(tc.in) > 0 {
			if back, err := Parse(Format(tc.in)); err != nil || !slices.Equal(back, tc.in) {
				t.Errorf("Parse(Format(%v)) = %v, %v", tc.in, back, err)
			}
		}
	}
}

// Pin binds the calling thread, and only it: the mask of a thread pinned
// to the last allowed CPU is that CPU alone.
func TestPin(t *testing.T) {
	allowed, err := Allowed()
	if err != nil || len(allowed) == 0 {
		t.Fatalf("Allowed: %v %v", allowed, err)
	}
	last := allowed[len(allowed)-1]
	if err := Check([]int{last}); err != nil {
		t.Fatal(err)
	}
	if err := Check([]int{MaxCPU - 1}); err == nil && !slices.Contains(allowed, MaxCPU-1) {
		t.Fatal("Check accepted a CPU outside the mask")
	}
	done := make(chan []int)
	go func() {
		runtime.LockOSThread() // ends locked: the pinned thread exits with it
		if err := Pin(last); err != nil {
			t.Error(err)
		}
		got, _ := Allowed()
		done <- got
	}()
	if got := <-done; !slices.Equal(got, []int{last}) {
		t.Fatalf("pinned thread's mask %v, want [%d]", got, last)
	}
	if err := Pin(-1); err == nil {
		t.Fatal("Pin(-1) succeeded")
	}
}
