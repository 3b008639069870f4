package host

// ShareEveryCall makes st send every single record operation as a batch
// of its own, the path calls that find every instance busy take, so that
// a test can run the conformance suite through it.
func ShareEveryCall(st *Store) { st.shareEvery = true }
