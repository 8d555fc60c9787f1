package kafka

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/eddyflow/eddy/stream"
)

// The per-partition watermark logic of a split, without a broker, as scripts:
//
//	split strategy=bounded:2s|monotonous idle=1m   a split with no partitions
//	add p=N                                        a partition, active from now
//	record p=N ts=MS                               a record of partition N at event time MS
//	batch-end p=N                                  a fetch of partition N ends
//	advance DUR                                    the split's clock moves
//	watermark                                      what the split emits now (or "none")
//	partitions                                     each partition's watermark and idleness
func TestWatermarkScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			parts    map[topicPartition]*partition[int]
			strategy stream.WatermarkStrategy[int]
			idle     time.Duration
			now      = time.Unix(0, 0)
			emitted  = stream.MinWatermark
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key string) string {
				for _, a := range d.CmdArgs {
					if a.Key == key && len(a.Vals) > 0 {
						return a.Vals[0]
					}
				}
				d.Fatalf(t, "%s: missing %s=", d.Cmd, key)
				return ""
			}
			num := func(key string) int64 {
				n, err := strconv.ParseInt(arg(key), 10, 64)
				if err != nil {
					d.Fatalf(t, "%s: %s: %v", d.Cmd, key, err)
				}
				return n
			}
			part := func() *partition[int] {
				p := parts[topicPartition{"t", int32(num("p"))}]
				if p == nil {
					d.Fatalf(t, "%s: no partition %s", d.Cmd, arg("p"))
				}
				return p
			}
			switch d.Cmd {
			case "split":
				parts, emitted = map[topicPartition]*partition[int]{}, stream.MinWatermark
				s := arg("strategy")
				switch {
				case s == "monotonous":
					strategy = stream.Monotonous[int]()
				case strings.HasPrefix(s, "bounded:"):
					delay, err := time.ParseDuration(strings.TrimPrefix(s, "bounded:"))
					if err != nil {
						d.Fatalf(t, "strategy: %v", err)
					}
					strategy = stream.BoundedOutOfOrder[int](delay)
				default:
					d.Fatalf(t, "strategy %q", s)
				}
				var err error
				if idle, err = time.ParseDuration(arg("idle")); err != nil {
					d.Fatalf(t, "idle: %v", err)
				}
				return ""
			case "add":
				parts[topicPartition{"t", int32(num("p"))}] = &partition[int]{gen: strategy.NewGenerator(), wm: stream.MinWatermark, lastActive: now}
				return ""
			case "record":
				p := part()
				p.lastActive, p.idle = now, false
				p.observe(0, num("ts"))
				return ""
			case "batch-end":
				part().batchEnd()
				return ""
			case "advance":
				dur, err := time.ParseDuration(d.CmdArgs[0].Key)
				if err != nil {
					d.Fatalf(t, "advance: %v", err)
				}
				now = now.Add(dur)
				return ""
			case "watermark":
				w, ok := splitWatermark(parts, idle, now, emitted)
				if !ok {
					return "none"
				}
				emitted = w
				return fmt.Sprintf("emit %d", w)
			case "partitions":
				var lines []string
				for tp, p := range parts {
					wm := "none"
					if p.wm != stream.MinWatermark {
						wm = strconv.FormatInt(p.wm, 10)
					}
					state := "active"
					if p.idle {
						state = "idle"
					}
					lines = append(lines, fmt.Sprintf("p%d: watermark %s, %s", tp.partition, wm, state))
				}
				slices.Sort(lines)
				return strings.Join(lines, "\n")
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
				return ""
			}
		})
	})
}
