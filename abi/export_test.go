package abi

// MaxReplyDepth exports maxReplyDepth to the tests of package abi_test,
// which check the decoder and README.md against it.
const MaxReplyDepth = maxReplyDepth
