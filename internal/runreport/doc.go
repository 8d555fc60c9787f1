// Package runreport tells a user how a job is doing while it runs and how it went when it
// ends: a progress line on a terminal every few seconds (nothing when the output is not a
// terminal), and a one-line summary at the end. The examples and cmd/eddy use it.
//
// The smallest use:
//
//	stop := runreport.Progress(os.Stderr, job, 0) // 0: the default interval
//	err := job.Run(ctx)
//	stop()
//	fmt.Fprintln(os.Stderr, runreport.Summary(job))
package runreport
