//go:build !wasip1

package sdk

import "github.com/storage-host/storage-host/abi"

// Outside a wasm plugin there is no host to call: these exist so that
// plugin packages build (and vet) on any platform.

func logWrite(abi.Level, string) { panic(errNoHost) }

func clockNow() int64 { panic(errNoHost) }

func kvCall([]byte) []byte { panic(errNoHost) }

func redisCall([]byte) []byte { panic(errNoHost) }

func postgresCall([]byte) []byte { panic(errNoHost) }

func eventsPublish([]byte) int32 { panic(errNoHost) }

const errNoHost = "sdk: host functions exist only inside a GOOS=wasip1 plugin"
