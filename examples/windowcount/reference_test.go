package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
)

// This file is the contract of examples/windowcount in its plainest form: one goroutine,
// no engine, every rule applied literally, in file order. It is written from the contract
// (and the team's clarifications), not from main.go.

// refMode are the mode parameters, all in milliseconds. Exactly one of Window and Session
// is > 0; Slide > 0 (with Window) makes the windows hopping.
type refMode struct {
	Window, Slide, Session, Lateness, Delay int64
}

// refResult is what the program should produce: Out are the stdout lines in one valid
// order (firings of one window in their order), Late the lines of the late file,
// Malformed the 1-based numbers of the malformed lines.
type refResult struct {
	Out       []string
	Late      []string
	Malformed []int
}

type refRecord struct {
	key   string
	ts    int64
	value float64
}

// refWindow is the state of one window (or session) of one key.
type refWindow struct {
	key        string
	start, end int64
	count      int64
	sum        float64
	fired      bool
}

type refWinKey struct {
	key        string
	start, end int64
}

var jsonInteger = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// refParse parses one non-blank line: a JSON object with "key" a JSON string, "ts" a
// JSON integer and "value" a JSON number; extra fields are allowed.
func refParse(line []byte) (refRecord, error) {
	var rec refRecord
	if !json.Valid(line) {
		return rec, errors.New("not JSON")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		return rec, errors.New("not a JSON object")
	}
	rawKey, ok := m["key"]
	if !ok {
		return rec, errors.New("missing key")
	}
	if len(rawKey) == 0 || rawKey[0] != '"' {
		return rec, errors.New("key is not a string")
	}
	if err := json.Unmarshal(rawKey, &rec.key); err != nil {
		return rec, err
	}
	rawTs, ok := m["ts"]
	if !ok {
		return rec, errors.New("missing ts")
	}
	if !jsonInteger.Match(rawTs) {
		return rec, errors.New("ts is not an integer")
	}
	ts, err := strconv.ParseInt(string(rawTs), 10, 64)
	if err != nil {
		return rec, err
	}
	rec.ts = ts
	rawValue, ok := m["value"]
	if !ok {
		return rec, errors.New("missing value")
	}
	if len(rawValue) == 0 || (rawValue[0] != '-' && (rawValue[0] < '0' || rawValue[0] > '9')) {
		return rec, errors.New("value is not a number")
	}
	v, err := strconv.ParseFloat(string(rawValue), 64)
	if err != nil {
		return rec, err
	}
	rec.value = v
	return rec, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func outLine(w *refWindow) string {
	b, err := json.Marshal(struct {
		Key   string  `json:"key"`
		Start int64   `json:"start"`
		End   int64   `json:"end"`
		Count int64   `json:"count"`
		Sum   float64 `json:"sum"`
	}{w.key, w.start, w.end, w.count, w.sum})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func lateLine(r refRecord) string {
	b, err := json.Marshal(struct {
		Key   string  `json:"key"`
		Ts    int64   `json:"ts"`
		Value float64 `json:"value"`
	}{r.key, r.ts, r.value})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// reference runs the contract over the input.
func reference(data []byte, mode refMode) refResult {
	var res refResult
	var (
		hasW  bool  // false until the first record
		maxTs int64 // largest ts so far
		w     int64 // the watermark, maxTs - Delay, once hasW
	)
	windows := map[refWinKey]*refWindow{} // tumbling and hopping: live (not dropped) windows
	sessions := map[string][]*refWindow{} // sessions: live sessions per key

	fire := func(win *refWindow) {
		res.Out = append(res.Out, outLine(win))
		win.fired = true
	}
	// live returns every live window, in a deterministic order.
	live := func() []*refWindow {
		var all []*refWindow
		for _, win := range windows {
			all = append(all, win)
		}
		for _, ss := range sessions {
			all = append(all, ss...)
		}
		slices.SortFunc(all, func(a, b *refWindow) int {
			if c := cmp.Compare(a.end, b.end); c != 0 {
				return c
			}
			if c := cmp.Compare(a.key, b.key); c != 0 {
				return c
			}
			return cmp.Compare(a.start, b.start)
		})
		return all
	}

	addWindowed := func(rec refRecord) {
		var starts []int64
		if mode.Slide > 0 {
			for k := floorDiv(rec.ts, mode.Slide); k*mode.Slide+mode.Window > rec.ts; k-- {
				starts = append(starts, k*mode.Slide)
			}
		} else {
			starts = append(starts, floorDiv(rec.ts, mode.Window)*mode.Window)
		}
		late := true
		for _, start := range starts {
			end := start + mode.Window
			if hasW && end+mode.Lateness <= w {
				continue // too late for this window
			}
			late = false
			k := refWinKey{rec.key, start, end}
			win := windows[k]
			if win == nil {
				win = &refWindow{key: rec.key, start: start, end: end}
				windows[k] = win
			}
			win.count++
			win.sum += rec.value
			if hasW && end <= w {
				fire(win) // fires (again) at once
			}
		}
		if late {
			res.Late = append(res.Late, lateLine(rec))
		}
	}

	addSession := func(rec refRecord) {
		cur := &refWindow{key: rec.key, start: rec.ts, end: rec.ts + mode.Session, count: 1, sum: rec.value}
		ss := sessions[rec.key]
		merged := false
		for changed := true; changed; {
			changed = false
			for i, s := range ss {
				if s.start <= cur.end && s.end >= cur.start {
					cur.start = min(cur.start, s.start)
					cur.end = max(cur.end, s.end)
					cur.count += s.count
					cur.sum += s.sum
					ss = slices.Delete(ss, i, i+1)
					merged, changed = true, true
					break
				}
			}
		}
		if !merged && hasW && rec.ts+mode.Session+mode.Lateness <= w {
			res.Late = append(res.Late, lateLine(rec))
			return
		}
		sessions[rec.key] = append(ss, cur)
		if hasW && cur.end <= w {
			fire(cur) // fires at once (again, if a part of it had fired)
		}
	}

	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue // blank lines are skipped
		}
		rec, err := refParse(line)
		if err != nil {
			res.Malformed = append(res.Malformed, i+1)
			continue
		}
		if mode.Session > 0 {
			addSession(rec)
		} else {
			addWindowed(rec)
		}
		// The watermark moves after the record was added; then firings, then drops.
		if !hasW || rec.ts > maxTs {
			maxTs = rec.ts
		}
		hasW = true
		w = maxTs - mode.Delay
		for _, win := range live() {
			if !win.fired && win.end <= w {
				fire(win)
			}
		}
		for k, win := range windows {
			if win.end+mode.Lateness <= w {
				delete(windows, k)
			}
		}
		for key, ss := range sessions {
			ss = slices.DeleteFunc(ss, func(s *refWindow) bool { return s.end+mode.Lateness <= w })
			if len(ss) == 0 {
				delete(sessions, key)
			} else {
				sessions[key] = ss
			}
		}
	}
	// End of input: every window not yet fired fires.
	for _, win := range live() {
		if !win.fired {
			fire(win)
		}
	}
	return res
}
