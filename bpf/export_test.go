package bpf

import "time"

// RunTimed runs the steering program once on frame and returns its
// verdict and how long the kernel measured the run to take.
func (p *Program) RunTimed(frame []byte) (uint32, time.Duration, error) {
	return p.objs.ReboundSteer.Benchmark(frame, 1, nil)
}
