package events

// PGSequenceBegin is the first statement of a sequencer run, for tests
// that hold a run open.
const PGSequenceBegin = pgSequenceBegin
