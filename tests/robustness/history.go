package robustness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Record is one operation of a history. Times are nanoseconds on the
// monotonic clock since the recorder started.
type Record struct {
	ClientID int    `json:"client"`
	Input    Input  `json:"input"`
	Output   Output `json:"output"`
	Call     int64  `json:"call"`
	// Return is -1 for an operation whose outcome is unknown.
	Return int64  `json:"return"`
	Agent  string `json:"agent,omitempty"`
	Err    string `json:"error,omitempty"`
}

// Event is a nemesis action, shown beside the operations in the
// visualization.
type Event struct {
	Start int64  `json:"start"`
	End   int64  `json:"end"`
	What  string `json:"what"`
}

// History is a recorded run.
type History struct {
	Records []Record `json:"records"`
	Events  []Event  `json:"events,omitempty"`
}

// Recorder collects a history from concurrent clients.
type Recorder struct {
	start time.Time

	mu         sync.Mutex
	records    []Record
	events     []Event
	nextClient int
}

// NewRecorder starts the clock.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the time since the recorder started (monotonic).
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// NewClientID returns a fresh client id. A client gets a new one after an
// operation with an unknown outcome, since that operation stays open until
// the end of the history.
func (r *Recorder) NewClientID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.nextClient
	r.nextClient++
	return id
}

// Add records one operation.
func (r *Recorder) Add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
}

// Note records a nemesis action from start to end.
func (r *Recorder) Note(start, end int64, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Event{Start: start, End: end, What: what})
}

// History returns a copy of what was recorded, ordered by call time.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := History{
		Records: append([]Record(nil), r.records...),
		Events:  append([]Event(nil), r.events...),
	}
	sort.SliceStable(h.Records, func(i, j int) bool { return h.Records[i].Call < h.Records[j].Call })
	return h
}

// Stats counts a history's operations.
type Stats struct {
	Total, Gets, Puts, CASes, CASOK, Unknown int
}

// Stats counts the history's operations by kind and outcome.
func (h History) Stats() Stats {
	var s Stats
	for _, r := range h.Records {
		s.Total++
		switch r.Input.Kind {
		case KindGet:
			s.Gets++
		case KindPut:
			s.Puts++
		case KindCAS:
			s.CASes++
			if r.Output.OK && !r.Output.Unknown {
				s.CASOK++
			}
		}
		if r.Output.Unknown {
			s.Unknown++
		}
	}
	return s
}

// Operations converts the history for porcupine: an operation with an
// unknown outcome returns after everything else.
func (h History) Operations() []porcupine.Operation {
	var end int64
	for _, r := range h.Records {
		end = max(end, r.Call, r.Return)
	}
	end++
	ops := make([]porcupine.Operation, 0, len(h.Records))
	for _, r := range h.Records {
		ret := r.Return
		if r.Output.Unknown || ret < 0 {
			ret = end
		}
		ops = append(ops, porcupine.Operation{
			ClientId: r.ClientID,
			Input:    r.Input,
			Call:     r.Call,
			Output:   r.Output,
			Return:   ret,
			Metadata: r.Agent,
		})
	}
	return ops
}

// WithoutUnobservedUnknowns returns the history without the writes whose
// outcome is unknown and whose value no read returned. If that history is
// linearizable, so is h: the dropped writes can all be placed at its end,
// where nothing observes them. (The converse does not hold, since such a
// write may explain a failed CAS: an Illegal verdict must come from h.)
func (h History) WithoutUnobservedUnknowns() History {
	observed := map[string]bool{}
	for _, r := range h.Records {
		if r.Input.Kind == KindGet && r.Output.Found {
			observed[r.Input.Key+"\x00"+r.Output.Value] = true
		}
	}
	out := History{Events: h.Events, Records: make([]Record, 0, len(h.Records))}
	for _, r := range h.Records {
		if r.Output.Unknown && r.Input.Kind != KindGet && !observed[r.Input.Key+"\x00"+r.Input.Value] {
			continue
		}
		out.Records = append(out.Records, r)
	}
	return out
}

// Check runs porcupine on the history: first without the unknown writes
// nobody observed (an Ok there is an Ok for h, and it is much cheaper), and
// when that is not Ok, on the whole history. A timeout of 0 means none;
// porcupine.Unknown means it gave up.
func Check(h History, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	reduced := h.WithoutUnobservedUnknowns()
	if len(reduced.Records) < len(h.Records) {
		if res, info := check(reduced, timeout); res == porcupine.Ok {
			return res, info
		}
	}
	return check(h, timeout)
}

func check(h History, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	model := Model
	model.DescribeOperationMetadata = func(info any) string {
		if s, ok := info.(string); ok && s != "" {
			return "via " + s
		}
		return ""
	}
	return porcupine.CheckOperationsVerbose(model, h.Operations(), timeout)
}

// Save writes history.json and, when info is non-nil, porcupine's
// visualization history.html into dir (created). It returns dir.
func Save(dir string, h History, info *porcupine.LinearizationInfo) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("robustness: create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(h, "", " ")
	if err != nil {
		return "", fmt.Errorf("robustness: encode history: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644); err != nil {
		return "", fmt.Errorf("robustness: write history: %w", err)
	}
	if info != nil {
		var notes []porcupine.Annotation
		for _, e := range h.Events {
			notes = append(notes, porcupine.Annotation{Tag: "nemesis", Start: e.Start, End: e.End, Description: e.What, BackgroundColor: "#f4cccc"})
		}
		info.AddAnnotations(notes)
		model := Model
		if err := porcupine.VisualizePath(model, *info, filepath.Join(dir, "history.html")); err != nil {
			return dir, fmt.Errorf("robustness: visualize: %w", err)
		}
	}
	return dir, nil
}

// Load reads a history saved by Save.
func Load(path string) (History, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return History{}, fmt.Errorf("robustness: read history: %w", err)
	}
	var h History
	if err := json.Unmarshal(b, &h); err != nil {
		return History{}, fmt.Errorf("robustness: decode history %s: %w", path, err)
	}
	return h, nil
}
