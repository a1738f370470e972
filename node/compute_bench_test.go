package node

import (
	"context"
	"testing"
	"time"

	"github.com/trinity-net/trinity/verify/grail"
)

// BenchmarkComputeJobs runs leased jobs end to end over loopback streams
// (the provider's work, the transfers and the client's verification) and,
// interleaved in the same run, the same work done locally. It reports both
// per job and their ratio: what leasing and checking cost on top of doing
// the job oneself. Provider and client share this machine, so the ratio
// counts the provider's work too (the network's cost, not the client's).
func BenchmarkComputeJobs(b *testing.B) {
	env := newComputeEnv(b)
	p := env.provider("p")
	c := env.client()
	ctx := context.Background()
	if err := c.net.Connect(ctx, p.net.AddrInfo()); err != nil {
		b.Fatal(err)
	}
	const steps = 8
	pages := []int{1, 2, 3, 4}
	prompt := []int32{'T', 'o', ' ', 'b', 'e'}
	s := grail.Sampling{Temperature: 0.8, TopK: 20}
	jobs := []struct {
		name   string
		local  func() error
		leased func() error
	}{
		{"generate-48", func() error {
			pr, err := grail.NewProver(c.model, p.priv)
			if err != nil {
				return err
			}
			_, err = pr.Prove(ctx, [32]byte{1}, prompt, 48, s)
			return err
		}, func() error {
			_, err := c.Generate(ctx, p.net.ID(), prompt, 48, s)
			return err
		}},
		{"train-8-check-1", func() error { return localTrain(env, c, pages, steps) }, func() error {
			_, err := c.Train(ctx, p.net.ID(), pages, steps, 1)
			return err
		}},
		{"train-8-check-8", func() error { return localTrain(env, c, pages, steps) }, func() error {
			_, err := c.Train(ctx, p.net.ID(), pages, steps, steps)
			return err
		}},
	}
	for _, j := range jobs {
		b.Run(j.name, func(b *testing.B) {
			var local, leased time.Duration
			for range b.N {
				t := time.Now()
				if err := j.local(); err != nil {
					b.Fatal(err)
				}
				local += time.Since(t)
				t = time.Now()
				if err := j.leased(); err != nil {
					b.Fatal(err)
				}
				leased += time.Since(t)
			}
			b.ReportMetric(float64(local.Microseconds())/float64(b.N)/1000, "local-ms/job")
			b.ReportMetric(float64(leased.Microseconds())/float64(b.N)/1000, "leased-ms/job")
			b.ReportMetric(float64(leased)/float64(local), "leased/local")
		})
	}
}

func localTrain(env *computeEnv, c *ComputeClient, pages []int, steps int) error {
	r, err := newTrainRun(env.eng, env.g, env.ds, pages)
	if err != nil {
		return err
	}
	r.reset(c.model.Params, nil, nil, 0)
	for s := range steps {
		if err := r.step(s); err != nil {
			return err
		}
	}
	return nil
}
